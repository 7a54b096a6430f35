//! Untrusted `spec.template.data` text, rendered by the controller's Go-template interpreter.
//! Must never panic, and must stay within its depth, loop and output limits. The input is also
//! cut at U+001F into the items of one object, rendered under the one budget `unseal` uses.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: BTreeMap<String, String> = [
        ("password".to_owned(), "s3cr3t".to_owned()),
        ("user".to_owned(), "admin".to_owned()),
        ("json".to_owned(), r#"{"a":[1,2,{"b":null}]}"#.to_owned()),
    ]
    .into_iter()
    .collect();
    let _ = sealed_secrets_api::template::render(text, &values);

    use sealed_secrets_api::template::{Renderer, Template};
    let mut object = Renderer::new(&values, &sealed_secrets_api::unseal::TEMPLATE_LIMITS);
    for item in text.split('\u{1f}') {
        if let Ok(t) = Template::parse(item) {
            let _ = object.render(&t);
        }
    }
});
