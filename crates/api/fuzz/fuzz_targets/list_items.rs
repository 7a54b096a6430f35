//! List bodies as the controller's start-up check reads them from the API server, split into
//! items as they arrive (`sealed_secrets_api::list_items`). The first byte picks the chunk
//! size, so that every cut of the body is tried. Must never panic; an item it emits must start
//! with `{` and, from a body that is valid JSON, be an object serde_json reads back (only the
//! structure is tracked, so mismatched brackets make an item serde_json then refuses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_secrets_api::list_items::ListSplitter;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 64) + 1;
    let mut split = ListSplitter::new(4096);
    let mut objects = Vec::new();
    for c in body.chunks(chunk) {
        let fed = split.feed(c, |item| {
            assert_eq!(item.first(), Some(&b'{'));
            objects.push(item.to_vec());
            Ok::<_, ()>(())
        });
        if fed.is_err() {
            return;
        }
    }
    // A body that is valid JSON and split whole: every item is an object serde_json reads.
    if split.finish().is_ok() && serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        for o in &objects {
            let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(o);
            assert!(object.is_ok());
        }
    }
});
