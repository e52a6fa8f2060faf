//! Rust names from wire names: one place that cases and escapes them.

/// `list_slaves`, `TOKEN_VALIDATE`, `sendMessage`, `#handshake` → `ListSlaves`, `TokenValidate`,
/// `SendMessage`, `Handshake`.
pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::new();
    for word in words(name) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'X');
    }
    escape(out)
}

/// `hb_interval`, `isAuthenticated`, `ID`, `TOKEN_VALIDATE` → `hb_interval`, `is_authenticated`,
/// `id`, `token_validate`; keywords are escaped (`type` → `r#type`).
pub(crate) fn snake(name: &str) -> String {
    let mut out = words(name)
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    escape(out)
}

/// `ControlToMaster`-style names are built from already-cased parts, so only the keyword check.
fn escape(name: String) -> String {
    const STRICT: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe",
        "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
        "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    // These cannot be raw identifiers.
    const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];
    if NOT_RAW.contains(&name.as_str()) {
        format!("{name}_")
    } else if STRICT.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

/// Splits on non-alphanumerics and at lower→upper case changes (`isAuthenticated` → is, Authenticated;
/// `HTTPServer` → HTTP, Server).
fn words(name: &str) -> impl Iterator<Item = String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            Some(p) if c.is_uppercase() => {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            }
            _ => false,
        };
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_wire_names() {
        assert_eq!(upper_camel("list_slaves"), "ListSlaves");
        assert_eq!(upper_camel("TOKEN_VALIDATE"), "TokenValidate");
        assert_eq!(upper_camel("sendMessage"), "SendMessage");
        assert_eq!(upper_camel("#handshake"), "Handshake");
        assert_eq!(upper_camel("HTTPServer"), "HttpServer");
        assert_eq!(snake("hb_interval"), "hb_interval");
        assert_eq!(snake("isAuthenticated"), "is_authenticated");
        assert_eq!(snake("ID"), "id");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("self"), "self_");
        assert_eq!(snake("2fa"), "_2fa");
        assert_eq!(upper_camel("Self"), "Self_");
    }
}
