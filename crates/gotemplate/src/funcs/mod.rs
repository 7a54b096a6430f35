//! Template functions: Go's builtins plus the sprig v3 generic functions people use in
//! SealedSecret templates. `env`, `expandenv` and `getHostByName` are deliberately absent
//! (upstream v0.30, #1703); so are functions reaching outside the template (random, time,
//! network) and those needing a regex engine.

pub(crate) mod args;
mod builtins;
mod collections;
mod encoding;
mod numbers;
mod strings;

use crate::CallError;
use crate::budget::Budget;
use crate::value::Value;
use args::Res;

/// One template function: its name as called (several names can share a function, which
/// may tell them apart), its arguments (the piped value, if any, last) and the render budget.
/// Results whose size can outgrow the arguments are checked against the budget before they
/// are built; the evaluator charges every result after.
pub(crate) type Func = fn(&str, Vec<Value>, &mut Budget) -> Res;

/// Every function, by name: Go's builtins (`and`/`or` are evaluated lazily by the evaluator
/// and are not here) and the sprig functions.
static TABLE: &[(&str, Func)] = &[
    ("not", builtins::f_not),
    ("len", builtins::f_len),
    ("index", builtins::f_index),
    ("slice", builtins::f_slice),
    ("print", builtins::f_print),
    ("println", builtins::f_println),
    ("printf", builtins::f_printf),
    ("eq", builtins::f_eq),
    ("ne", builtins::f_ordered),
    ("lt", builtins::f_ordered),
    ("le", builtins::f_ordered),
    ("gt", builtins::f_ordered),
    ("ge", builtins::f_ordered),
    ("html", builtins::f_escape),
    ("js", builtins::f_escape),
    ("urlquery", builtins::f_escape),
    ("upper", strings::f_case),
    ("lower", strings::f_case),
    ("title", strings::f_case),
    ("untitle", strings::f_case),
    ("trim", strings::f_trim),
    ("trimAll", strings::f_trim_all),
    ("trimPrefix", strings::f_trim_prefix),
    ("trimSuffix", strings::f_trim_suffix),
    ("trunc", strings::f_trunc),
    ("substr", strings::f_substr),
    ("repeat", strings::f_repeat),
    ("replace", strings::f_replace),
    ("contains", strings::f_contains),
    ("hasPrefix", strings::f_has_prefix),
    ("hasSuffix", strings::f_has_suffix),
    ("quote", strings::f_quote),
    ("squote", strings::f_squote),
    ("cat", strings::f_cat),
    ("indent", strings::f_indent),
    ("nindent", strings::f_indent),
    ("nospace", strings::f_nospace),
    ("abbrev", strings::f_abbrev),
    ("plural", strings::f_plural),
    ("split", strings::f_split),
    ("splitList", strings::f_split),
    ("splitn", strings::f_splitn),
    ("join", strings::f_join),
    ("sortAlpha", strings::f_sort_alpha),
    ("toString", strings::f_to_string),
    ("toStrings", strings::f_to_strings),
    ("b64enc", encoding::f_b64enc),
    ("b64dec", encoding::f_b64dec),
    ("toJson", encoding::f_to_json),
    ("mustToJson", encoding::f_to_json),
    ("toRawJson", encoding::f_to_json),
    ("mustToRawJson", encoding::f_to_json),
    ("toPrettyJson", encoding::f_to_json),
    ("mustToPrettyJson", encoding::f_to_json),
    ("sha256sum", encoding::f_sha256sum),
    ("sha1sum", encoding::f_sha1sum),
    ("sha512sum", encoding::f_sha512sum),
    ("adler32sum", encoding::f_adler32sum),
    ("default", numbers::f_default),
    ("empty", numbers::f_empty),
    ("coalesce", numbers::f_coalesce),
    ("ternary", numbers::f_ternary),
    ("fail", numbers::f_fail),
    ("required", numbers::f_required),
    ("int", numbers::f_int),
    ("int64", numbers::f_int),
    ("float64", numbers::f_float64),
    ("atoi", numbers::f_atoi),
    ("add", numbers::f_add),
    ("add1", numbers::f_add1),
    ("sub", numbers::f_sub),
    ("mul", numbers::f_mul),
    ("div", numbers::f_div_mod),
    ("mod", numbers::f_div_mod),
    ("max", numbers::f_max_min),
    ("min", numbers::f_max_min),
    ("floor", numbers::f_floor),
    ("ceil", numbers::f_ceil),
    ("round", numbers::f_round),
    ("list", collections::f_list),
    ("first", collections::f_first),
    ("last", collections::f_last),
    ("rest", collections::f_rest),
    ("initial", collections::f_initial),
    ("append", collections::f_append),
    ("push", collections::f_append),
    ("prepend", collections::f_prepend),
    ("concat", collections::f_concat),
    ("uniq", collections::f_uniq),
    ("has", collections::f_has),
    ("without", collections::f_without),
    ("compact", collections::f_compact),
    ("reverse", collections::f_reverse),
    ("until", collections::f_until),
    ("dict", collections::f_dict),
    ("get", collections::f_get),
    ("set", collections::f_set),
    ("unset", collections::f_unset),
    ("hasKey", collections::f_has_key),
    ("keys", collections::f_keys),
    ("values", collections::f_values),
    ("pick", collections::f_pick_omit),
    ("omit", collections::f_pick_omit),
];

/// The index in the table of function `name`, resolved once at parse time.
pub(crate) fn lookup(name: &str) -> Option<usize> {
    TABLE.iter().position(|(n, _)| *n == name)
}

/// Calls the function at `index` (from [`lookup`]).
pub(crate) fn call(index: usize, a: Vec<Value>, b: &mut Budget) -> Res {
    match TABLE.get(index) {
        Some((name, f)) => f(name, a, b),
        None => Err(CallError::Undefined),
    }
}
