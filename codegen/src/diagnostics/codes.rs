//! Every error code, with its title and a short explanation: the one table that the language
//! reference's list of codes is checked against (a test compares them), and that [`explain`]
//! answers from.
//!
//! Syntax errors (`E00xx`) come from the lexer, the parser and the typed lowering of directives;
//! checker errors (`E01xx`) from the checker. A code names one kind of mistake; the diagnostic's
//! headline and labels say what exactly was wrong where.

/// One error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The code, such as `E0116`.
    pub code: &'static str,
    /// What kind of mistake it names, in a line.
    pub title: &'static str,
    /// What the mistake is and how to fix it.
    pub explanation: &'static str,
}

/// Every code in use, in order.
pub const CODES: &[ErrorCode] = &[
    ErrorCode {
        code: "E0001",
        title: "unexpected character(s)",
        explanation: "The lexer met a character that starts no token. Remove it; outside strings and comments a definition uses ASCII punctuation and names.",
    },
    ErrorCode {
        code: "E0002",
        title: "unterminated string",
        explanation: "A string literal has no closing quote on its line. Strings cannot span lines; close it with `\"`.",
    },
    ErrorCode {
        code: "E0003",
        title: "unknown or malformed escape in a string",
        explanation: "A string holds an escape the language does not know. The escapes are `\\\\`, `\\\"`, `\\n`, `\\r`, `\\t` and `\\u{...}`.",
    },
    ErrorCode {
        code: "E0004",
        title: "integer literal out of the `i64` range",
        explanation: "An integer literal does not fit in an `i64`. Use a smaller number.",
    },
    ErrorCode {
        code: "E0005",
        title: "letters glued to an integer literal (`10ms`)",
        explanation: "Letters follow an integer with no space (`10ms`). Numbers carry no unit suffix; write the number alone.",
    },
    ErrorCode {
        code: "E0006",
        title: "the file is not valid UTF-8 (reported once, at the first invalid byte; each invalid sequence is read as U+FFFD and the rest of the file is checked)",
        explanation: "The file is not valid UTF-8. It is reported once, at the first invalid byte; the rest is read with U+FFFD and checked on. Save the file as UTF-8.",
    },
    ErrorCode {
        code: "E0010",
        title: "expected one thing, found another (the general syntax error)",
        explanation: "The parser expected one thing and found another. The label says what was expected.",
    },
    ErrorCode {
        code: "E0011",
        title: "the file has no `protocol` block",
        explanation: "Every definition file needs one `protocol NAME { ... }` block. Add it at the top.",
    },
    ErrorCode {
        code: "E0012",
        title: "the file has more than one `protocol` block",
        explanation: "A file holds exactly one protocol. Move the second into a file of its own.",
    },
    ErrorCode {
        code: "E0013",
        title: "unclosed delimiter (`{`, `(` or `[` never closed)",
        explanation: "A `{`, `(` or `[` is never closed. Close it where the construct ends.",
    },
    ErrorCode {
        code: "E0014",
        title: "nesting too deep (types or directive blocks nested more than 128 levels)",
        explanation: "Types or directive blocks nest more than 128 levels deep. Name an inner type instead.",
    },
    ErrorCode {
        code: "E0015",
        title: "expected an item (`message`, `event`, `request`, `struct`, `enum`, `union`, `type`)",
        explanation: "At the top level only items may stand: `message`, `event`, `request`, `struct`, `enum`, `union` and `type`. Check the keyword's spelling.",
    },
    ErrorCode {
        code: "E0016",
        title: "the `protocol` block comes after messages or types",
        explanation: "The `protocol` block must come before messages and types. Move it to the top.",
    },
    ErrorCode {
        code: "E0017",
        title: "a map's key type is not `string`",
        explanation: "Map keys are JSON object keys, so always strings. Write `{string: T}`.",
    },
    ErrorCode {
        code: "E0018",
        title: "more than one rest field (`..name`) in a field list",
        explanation: "A field list keeps at most one rest field (`..name`). Remove the others.",
    },
    ErrorCode {
        code: "E0019",
        title: "a doc comment that documents nothing",
        explanation: "A `///` comment is followed by nothing it could document. Remove it or move it above an item or field.",
    },
    ErrorCode {
        code: "E0020",
        title: "an inner doc comment (`//!`) that is not at the top of the file",
        explanation: "`//!` documents the file and belongs at its top. Use `///` elsewhere.",
    },
    ErrorCode {
        code: "E0021",
        title: "unexpected closing delimiter at the top level",
        explanation: "A closing `}`, `)` or `]` at the top level has no opening partner. Remove it or add the missing opener above.",
    },
    ErrorCode {
        code: "E0022",
        title: "a rest field with a type (`..extra: any`)",
        explanation: "A rest field keeps every other key as raw JSON and has no type. Write `..name` without `: T`.",
    },
    ErrorCode {
        code: "E0023",
        title: "a token that is not allowed in a directive",
        explanation: "Directives hold names, paths, literals and `|`, `->`, `=`, `:`. Remove the other token.",
    },
    ErrorCode {
        code: "E0024",
        title: "an `enum` or `union` with no variants",
        explanation: "An `enum` or `union` needs at least one variant. Add one, or use another type.",
    },
    ErrorCode {
        code: "E0101",
        title: "unknown type",
        explanation: "A type name is neither a built-in nor declared in the protocol (or its base). Fix the spelling or declare the type.",
    },
    ErrorCode {
        code: "E0102",
        title: "a name declared twice (protocol, directive, endpoint, link, close code name, type, variant, message, or a built-in type redeclared)",
        explanation: "A name is declared twice where it must be unique. Rename or remove one of them.",
    },
    ErrorCode {
        code: "E0103",
        title: "two messages with the same tag in one direction",
        explanation: "Two messages sent in the same direction share a tag, so a frame could not be told apart. Give one of them another tag.",
    },
    ErrorCode {
        code: "E0104",
        title: "a reply on an event or message",
        explanation: "Only a `request` has a reply (`-> PAYLOAD`). Make it a request, or remove the reply.",
    },
    ErrorCode {
        code: "E0105",
        title: "a message with no tag value where tags are integers",
        explanation: "Where tags are integers (`tag op int`), every message needs `= N`. Add its op code.",
    },
    ErrorCode {
        code: "E0106",
        title: "a tag of the wrong type (a string where tags are integers, or the reverse)",
        explanation: "A tag's type differs from the wire profile's `tag` directive. Write the tag as the profile says, or change the profile.",
    },
    ErrorCode {
        code: "E0107",
        title: "two fields with the same name (the rest field included)",
        explanation: "A field list names a field twice. Rename or remove one.",
    },
    ErrorCode {
        code: "E0108",
        title: "two fields with the same wire name, or a union variant's field named like the union's tag",
        explanation: "Two fields map to the same JSON key (after `as \"...\"`), or a union variant has a field named like the union's tag. Rename one.",
    },
    ErrorCode {
        code: "E0109",
        title: "a constraint that cannot hold (an empty range, a range outside the type, a negative length)",
        explanation: "A constraint no value can meet (an empty range, a range outside the type, a negative length). Fix its bounds.",
    },
    ErrorCode {
        code: "E0110",
        title: "a constraint that does not apply to the field's type",
        explanation: "The constraint does not apply to the field's type (`len` on an integer, a range on a string). Use one that fits the type.",
    },
    ErrorCode {
        code: "E0111",
        title: "a pattern that is not a valid regular expression",
        explanation: "A `pattern` is not a valid regular expression for the `regex` crate. Fix the expression.",
    },
    ErrorCode {
        code: "E0112",
        title: "`extends` of an unknown protocol",
        explanation: "`extends` names a protocol that was not compiled in the same run. Fix the name or compile its file too.",
    },
    ErrorCode {
        code: "E0113",
        title: "a cycle: in `extends`, in aliases, or in types holding themselves without an array or map",
        explanation: "A cycle: a protocol extending itself, aliases naming each other, or types holding each other without an array or map between. Break the cycle.",
    },
    ErrorCode {
        code: "E0114",
        title: "an unknown directive or clause, or a directive an extension cannot change",
        explanation: "The directive or clause is not one the language knows, or an extension tries to change what it inherits. Check the spelling; extensions only add messages and types.",
    },
    ErrorCode {
        code: "E0115",
        title: "a required directive or clause is missing (a request without a `response` directive to recognise its reply, too)",
        explanation: "A directive or clause the protocol needs is missing (a `version`, a `wire` block, `tag`, `payload`, a reply matcher, a heartbeat interval, a `response` for requests). Add it.",
    },
    ErrorCode {
        code: "E0116",
        title: "a directive or clause written in the wrong form (wrong words, wrong number or kind of arguments)",
        explanation: "A directive or clause is written in the wrong form. The label and help show the form it takes.",
    },
    ErrorCode {
        code: "E0117",
        title: "an unknown endpoint, or a route over an undeclared link",
        explanation: "A route names an endpoint not declared in `endpoints`, or a pair of endpoints with no declared link. Declare it, or fix the name.",
    },
    ErrorCode {
        code: "E0118",
        title: "an unknown sender in `from`",
        explanation: "`from` takes `client`, `server` or `any`. Use one of them (or `on a -> b` with named endpoints).",
    },
    ErrorCode {
        code: "E0119",
        title: "a payload shape the wire profile cannot carry",
        explanation: "The payload's shape cannot travel in this wire profile (for example a positional payload where payloads sit inline). Change the payload or the profile.",
    },
    ErrorCode {
        code: "E0120",
        title: "an unknown message in a session rule",
        explanation: "A session rule names a message the protocol does not declare. Fix the name or declare it.",
    },
    ErrorCode {
        code: "E0121",
        title: "an unknown close code",
        explanation: "A session rule names a close code that is not in the `close` block. Declare it there, or use a number.",
    },
    ErrorCode {
        code: "E0122",
        title: "a close code declared twice",
        explanation: "The `close` block declares the same code twice. Remove one.",
    },
    ErrorCode {
        code: "E0123",
        title: "`?` where a key cannot be absent",
        explanation: "`?` means a key may be absent, so it applies only to a field's type. Inside arrays, maps and unions write `T | null`.",
    },
    ErrorCode {
        code: "E0124",
        title: "two names that become the same Rust name, or a name the generator uses itself",
        explanation: "Two names become the same Rust name, or a name is one the generator declares itself. Rename one.",
    },
    ErrorCode {
        code: "E0125",
        title: "an unknown field in a session rule",
        explanation: "A session rule names a field the message does not have. Fix the field name.",
    },
    ErrorCode {
        code: "E0126",
        title: "a route form that does not fit the protocol (`from` with endpoints, `on` or `links` without)",
        explanation: "`from` is for protocols without named endpoints and `on` for those with them; `links` needs `endpoints`. Use the form that fits.",
    },
    ErrorCode {
        code: "E0127",
        title: "a union that cannot be told apart by JSON type",
        explanation: "A union's members must differ in JSON type so that decoding can tell them apart. Use a tagged `union` instead.",
    },
    ErrorCode {
        code: "E0128",
        title: "a protocol name longer than 64 bytes",
        explanation: "The protocol's name becomes a file, module and type name, and is limited to 64 bytes. Shorten it.",
    },
    ErrorCode {
        code: "E0129",
        title: "an event or request whose sender method would be named like a method every link has (`send`, `request`, `close`, `clone`, ...)",
        explanation: "A message's sender method would be named like a method every link already has (`send`, `close`, `clone`, ...), which would make it ambiguous or unreachable. Rename the message.",
    },
    ErrorCode {
        code: "E0130",
        title: "`null` alone, or `null | null`, as a type",
        explanation: "`null` alone carries no information, and `null | null` is the same. Write `T | null` for a value that may be null.",
    },
    ErrorCode {
        code: "E0131",
        title: "a literal of the wrong kind: a number where a string is needed (`version 1`, a union's `tag 1`)",
        explanation: "A literal of the wrong kind: `version` takes a string (`version \"1\"`), and a union's `tag` is a key name in quotes.",
    },
    ErrorCode {
        code: "E0132",
        title: "a close code outside the WebSocket range 1000..=4999",
        explanation: "WebSocket close codes are 1000 to 4999; protocol-specific codes are 4000 to 4999. Use a code in range.",
    },
    ErrorCode {
        code: "E0133",
        title: "an unknown tag type in `tag KEY TYPE` (only `string` and `int`)",
        explanation: "A tag is a `string` or an `int`. `integer` and `str` are read as `int` and `string` so the tags are still checked, but must be written as the language spells them.",
    },
    ErrorCode {
        code: "E0134",
        title: "a clause or directive that needs another one with it (`carrier` without `method` and `args`, `for` without `tag`, `id sequence` without `sequence`, untagged replies without a top-level `id`, an `error` frame without `tag` and `message`)",
        explanation: "Some clauses only make sense together: a `carrier` with `method` and `args`, a fixed reply `tag` with `for`, `id sequence` with a `sequence` directive, `untagged` replies with a top-level `id`, an `error` frame with `tag` and `message`. Add the missing partner, or remove the clause.",
    },
    ErrorCode {
        code: "E0135",
        title: "fewer than two endpoints",
        explanation: "`endpoints` declares the kinds of peer; a protocol needs at least two. Name them all, or leave `endpoints` out for a plain client and server.",
    },
    ErrorCode {
        code: "E0136",
        title: "a side that is neither `client`, `server`, nor an endpoint on one side of all its links",
        explanation: "A side is `client` (the side that connects), `server` (the side that accepts), or an endpoint that is on the same side of every link it is in. Use one of them.",
    },
    ErrorCode {
        code: "E0137",
        title: "`handshake SIDE requests` naming a message that is not a request",
        explanation: "`handshake SIDE requests` waits for a reply, so it needs a `request`. Write `sends` for messages and events.",
    },
    ErrorCode {
        code: "E0138",
        title: "a key path that cannot be reached (a path must be a key, or the payload key and a key inside it)",
        explanation: "A key path reaches a key at the top of the frame, or one inside the payload: `KEY` or `PAYLOAD.KEY`, with `payload PAYLOAD` declared. Declare the payload key, or shorten the path.",
    },
    ErrorCode {
        code: "E0139",
        title: "`invalid KIND of MESSAGE` for a kind other than `payload`",
        explanation: "Only `invalid payload` rules apply to particular messages (`of A | B`); other kinds of invalid frame name no message. Remove `of ...`.",
    },
];

/// Every code `protolink diff` reports: `B` for a change that breaks existing peers, `N` for a
/// compatible one (a note).
pub const DIFF_CODES: &[ErrorCode] = &[
    ErrorCode {
        code: "B0001",
        title: "a message removed",
        explanation: "A message of the old definition is gone. Old peers still send it, and new receivers refuse it; old receivers never get it. Keep it (deprecated in its docs), or bump the version and move every peer.",
    },
    ErrorCode {
        code: "B0002",
        title: "a message's tag changed",
        explanation: "The message is sent under a different tag (op code or name). Old peers send and expect the old tag. Keep the tag; add a new message for the new one.",
    },
    ErrorCode {
        code: "B0003",
        title: "a message's kind changed (`message`, `event`, `request`)",
        explanation: "A message became a request (now expecting a reply) or stopped being one. Old peers either never answer or do not wait for the answer. Keep the kind; add a new message.",
    },
    ErrorCode {
        code: "B0004",
        title: "a route removed (the message may no longer be sent one way)",
        explanation: "A side may no longer send the message (`from client` became `from server`, say). Old peers on that side still send it, and it is refused. Keep the route.",
    },
    ErrorCode {
        code: "B0005",
        title: "a new required field",
        explanation: "Old senders do not write the field, so new receivers refuse their frames. Make the field optional (`T?`) or give it a default.",
    },
    ErrorCode {
        code: "B0006",
        title: "a required field removed (or any field, under `strict`)",
        explanation: "New senders stop writing a field old receivers require (or, under `strict`, any field old receivers know). Keep it, or make it optional first and remove it once every receiver is new.",
    },
    ErrorCode {
        code: "B0007",
        title: "a field's or alias's values narrowed or changed: its type, range, length, pattern, an optional field made required",
        explanation: "New receivers refuse values old senders may write. Widen it back, or accept both forms (a union).",
    },
    ErrorCode {
        code: "B0008",
        title: "a payload, reply or type changed its shape or kind",
        explanation: "An object became an array, a struct a union, a union told apart by another key: old and new peers read each other's frames as something else. Keep the shape; add a new message or type.",
    },
    ErrorCode {
        code: "B0009",
        title: "a close code renumbered or removed",
        explanation: "Peers that act on a close code (reconnect, re-authenticate) no longer see the code they know. Keep the number; add new codes beside it.",
    },
    ErrorCode {
        code: "B0010",
        title: "the envelope changed (any `wire` setting; becoming `strict`)",
        explanation: "Where the tag, ids, sequence numbers or payload sit is how every frame is read; old peers cannot read the new envelope. Keep the `wire` settings, or bump the version and move every peer.",
    },
    ErrorCode {
        code: "B0011",
        title: "the session rules changed (handshake, its timeout, the rule before it, heartbeats, the close message)",
        explanation: "Old peers run the old handshake, heartbeat or close rules, and the link fails or closes. Keep the session; version it if it must change.",
    },
    ErrorCode {
        code: "B0012",
        title: "an enum value, union variant or union member removed",
        explanation: "Old peers still send the value, which new receivers refuse. Keep it, deprecated in its docs.",
    },
    ErrorCode {
        code: "B0014",
        title: "a new field under `strict` (old receivers refuse unknown keys)",
        explanation: "The envelope is `strict`, so an old receiver refuses a frame with a key it does not know, even an optional one. Drop `strict`, or move every receiver first.",
    },
    ErrorCode {
        code: "N0001",
        title: "a message added or renamed (its tag kept)",
        explanation: "Compatible: old peers never send the new message, and a rename that keeps the tag changes nothing on the wire.",
    },
    ErrorCode {
        code: "N0002",
        title: "a new optional field",
        explanation: "Compatible: old senders leave it out, and old receivers ignore it (unless `strict`, which is B0014).",
    },
    ErrorCode {
        code: "N0003",
        title: "values widened: a wider range or integer type, `T` made `T | null`, an optional field, no longer `strict`",
        explanation: "Compatible for new receivers; an old receiver may still refuse the new values a new sender chooses to send.",
    },
    ErrorCode {
        code: "N0004",
        title: "a close code added, or its reason changed",
        explanation: "Compatible: the numbers old peers know keep their meaning.",
    },
    ErrorCode {
        code: "N0005",
        title: "the version changed",
        explanation: "A note, so that a breaking change with the same version stands out (the first breaking change says so).",
    },
    ErrorCode {
        code: "N0006",
        title: "a route, enum value, union variant or member added",
        explanation: "Compatible for new receivers; old receivers refuse the new value if a new sender sends it.",
    },
    ErrorCode {
        code: "N0007",
        title: "an optional field removed",
        explanation: "Compatible: old receivers treat a missing optional field as absent.",
    },
];

/// The entry for `code` (`E0116`, `e0116`, or a diff code such as `B0005`), if there is one.
pub fn explain(code: &str) -> Option<&'static ErrorCode> {
    CODES
        .iter()
        .chain(DIFF_CODES)
        .find(|c| c.code.eq_ignore_ascii_case(code))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;

    fn crate_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The quoted codes (`"E0116"`) written in `text`.
    fn codes_in(text: &str) -> Vec<String> {
        text.match_indices("\"E0")
            .filter_map(|(at, _)| text.get(at + 1..at + 7))
            .filter_map(|c| c.strip_suffix('"'))
            .filter(|c| c[1..].bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn codes_are_sorted_unique_and_explained() {
        for pair in CODES.windows(2).chain(DIFF_CODES.windows(2)) {
            assert!(
                pair[0].code < pair[1].code,
                "{} then {}",
                pair[0].code,
                pair[1].code
            );
        }
        for c in CODES.iter().chain(DIFF_CODES) {
            assert!(
                !c.title.is_empty() && !c.explanation.is_empty(),
                "{}",
                c.code
            );
        }
        assert_eq!(explain("e0116").map(|c| c.code), Some("E0116"));
        assert_eq!(explain("E9999"), None);
        assert_eq!(explain("b0005").map(|c| c.code), Some("B0005"));
    }

    /// Every code `diff.rs` reports is in [`DIFF_CODES`], and every entry is reported there.
    #[test]
    fn every_diff_code_used_is_in_the_table_and_back() {
        let text = fs::read_to_string(crate_dir().join("src/diff.rs")).unwrap();
        let mut used = std::collections::BTreeSet::new();
        for prefix in ["\"B0", "\"N0"] {
            used.extend(
                text.match_indices(prefix)
                    .filter_map(|(at, _)| text.get(at + 1..at + 7))
                    .filter_map(|c| c.strip_suffix('"'))
                    .filter(|c| c[1..].bytes().all(|b| b.is_ascii_digit()))
                    .map(str::to_owned),
            );
        }
        let table: std::collections::BTreeSet<String> =
            DIFF_CODES.iter().map(|c| c.code.to_owned()).collect();
        assert_eq!(used, table);
    }

    /// A code written anywhere in the crate is in the table, and every code in the table is
    /// written somewhere: the table is the whole list.
    #[test]
    fn every_code_used_is_in_the_table_and_back() {
        let mut files = Vec::new();
        sources(&crate_dir().join("src"), &mut files);
        let mut used = std::collections::BTreeSet::new();
        for file in files
            .iter()
            .filter(|f| !f.ends_with("diagnostics/codes.rs"))
        {
            let text = fs::read_to_string(file).unwrap();
            used.extend(codes_in(&text));
        }
        for code in &used {
            assert!(explain(code).is_some(), "{code} is used but not in CODES");
        }
        for c in CODES {
            assert!(
                used.contains(c.code),
                "{} is in CODES but never used",
                c.code
            );
        }
    }

    /// The language reference lists exactly the table's codes and titles.
    #[test]
    fn the_language_reference_lists_the_table() {
        let doc = fs::read_to_string(crate_dir().join("../docs/definition-language.md")).unwrap();
        let listed: Vec<&str> = doc.lines().filter(|l| l.starts_with("| E0")).collect();
        let expected: Vec<String> = CODES
            .iter()
            .map(|c| format!("| {} | {} |", c.code, c.title))
            .collect();
        assert_eq!(listed, expected);
        let listed: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| B0") || l.starts_with("| N0"))
            .collect();
        let expected: Vec<String> = DIFF_CODES
            .iter()
            .map(|c| format!("| {} | {} |", c.code, c.title.replace('|', "\\|")))
            .collect();
        assert_eq!(listed, expected);
    }

    /// Every checker code has a broken definition in `tests/diagnostics/` showing it.
    #[test]
    fn every_checker_code_has_a_snapshot() {
        let names: Vec<String> = fs::read_dir(crate_dir().join("tests/diagnostics"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for c in CODES.iter().filter(|c| c.code.starts_with("E01")) {
            let prefix = format!("{}_", c.code.to_lowercase());
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with(&prefix) && n.ends_with(".protocol")),
                "no tests/diagnostics/{prefix}*.protocol"
            );
        }
    }
}
