//! What generated `JsonSchema` impls need beyond schemars' derive: the schema of a positional
//! struct (a JSON array whose trailing optional elements may be left out).

use schemars::Schema;
use serde_json::Value;

/// The schema of a positional struct, from its tuple's: at least `least` elements (trailing
/// optional elements may be left out), and each `(index, keyword, value)` put on that element's
/// schema (the field's constraints, as `protolink-codegen` words them for the schema files too).
pub fn positional_schema(
    mut schema: Schema,
    least: usize,
    keywords: impl IntoIterator<Item = (usize, &'static str, Value)>,
) -> Schema {
    schema.insert("minItems".to_owned(), least.into());
    for (index, keyword, value) in keywords {
        let element = schema
            .get_mut("prefixItems")
            .and_then(Value::as_array_mut)
            .and_then(|items| items.get_mut(index))
            .and_then(Value::as_object_mut);
        if let Some(element) = element {
            element.insert(keyword.to_owned(), value);
        }
    }
    schema
}
