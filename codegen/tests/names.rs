//! Names a definition may not use because the generated code or its files could not carry them.

use std::path::PathBuf;

use protolink_codegen::Config;
use protolink_codegen::model::MAX_PROTOCOL_NAME;

/// A small protocol called `name`, with `items` after its protocol block.
fn definition(name: &str, items: &str) -> String {
    format!(
        "protocol {name} {{\n    version \"1\"\n    wire {{\n        tag type string\n        payload inline\n        request ordered\n        response tag \"result\", for for\n    }}\n}}\n{items}"
    )
}

/// The codes of every diagnostic for `text`.
fn codes(text: &str) -> Vec<&'static str> {
    let checked = Config::new().check_sources(&[(PathBuf::from("t.protocol"), text.to_owned())]);
    checked.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn a_protocol_name_of_the_longest_length_is_written_and_one_byte_more_is_refused() {
    let longest = "p".repeat(MAX_PROTOCOL_NAME);
    let out = std::env::temp_dir().join(format!("protolink-names-{}", std::process::id()));
    let input = out.join("in.protocol");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    std::fs::write(&input, definition(&longest, ""))
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let written = Config::new().out_dir(&out).compile(&[&input]);
    let _ = std::fs::remove_dir_all(&out);
    let written =
        written.unwrap_or_else(|e| panic!("a {MAX_PROTOCOL_NAME}-byte name compiles: {e}"));
    assert_eq!(written[0].file_name, format!("{longest}.rs"));

    assert_eq!(codes(&definition(&format!("{longest}q"), "")), ["E0128"]);
    assert_eq!(codes(&definition(&"p".repeat(300), "")), ["E0128"]);
}

#[test]
fn a_message_named_like_a_link_method_is_refused_and_renaming_it_keeps_the_wire_tag() {
    let items = "request close from client {\n    channel: string,\n}\n";
    assert_eq!(codes(&definition("relay", items)), ["E0129"]);
    assert_eq!(
        codes(&definition("relay", "event send from server {}\n")),
        ["E0129"]
    );
    // Plain messages get no sender method, so they may be called anything.
    assert_eq!(
        codes(&definition("relay", "message close from client {}\n")),
        Vec::<&str>::new()
    );

    let renamed = "request close_channel = \"close\" from client {\n    channel: string,\n}\n";
    let source = (PathBuf::from("t.protocol"), definition("relay", renamed));
    let checked = Config::new().check_sources(&[source]);
    assert!(!checked.diagnostics.has_errors());
    let code = protolink_codegen::emit::rust::render(&checked.protocols[0], "t.protocol");
    for expected in [
        "pub struct CloseChannel {",
        "const NAME: &'static str = \"close_channel\";",
        "const TAG: __p::Tag = __p::Tag::Str(\"close\");",
        "fn close_channel(",
    ] {
        assert!(code.contains(expected), "{expected} in\n{code}");
    }
}

/// `LINK_METHODS` holds every method of `protolink::Sender` and every public method of
/// `protolink::Link` that takes `self`, read from the runtime's source, and the methods of the
/// prelude traits `Link` implements.
#[test]
fn link_methods_match_the_runtime() {
    use protolink_codegen::model::{LINK_METHODS, LinkMethodOwner};

    let runtime = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime/src");
    let parse = |file: &str| {
        let path = runtime.join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let listed = |owner: LinkMethodOwner| -> Vec<String> {
        let mut names: Vec<String> = LINK_METHODS
            .iter()
            .filter(|(_, o)| *o == owner)
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        names
    };

    let mut sender = Vec::new();
    for item in parse("message.rs").items {
        let syn::Item::Trait(t) = item else { continue };
        if t.ident != "Sender" {
            continue;
        }
        for item in t.items {
            if let syn::TraitItem::Fn(f) = item {
                sender.push(f.sig.ident.to_string());
            }
        }
    }
    sender.sort();
    assert_eq!(sender, listed(LinkMethodOwner::SenderTrait));

    let is_link = |ty: &syn::Type| matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Link"));
    let mut inherent = Vec::new();
    let mut traits = Vec::new();
    for item in parse("link.rs").items {
        let syn::Item::Impl(imp) = item else { continue };
        if !is_link(&imp.self_ty) {
            continue;
        }
        match &imp.trait_ {
            Some((path, _)) => {
                let name = path.segments.last().map(|s| s.ident.to_string());
                traits.push(name.unwrap_or_default());
            }
            None => {
                for item in &imp.items {
                    let syn::ImplItem::Fn(f) = item else { continue };
                    if matches!(f.vis, syn::Visibility::Public(_)) && f.sig.receiver().is_some() {
                        inherent.push(f.sig.ident.to_string());
                    }
                }
            }
        }
    }
    inherent.sort();
    assert_eq!(inherent, listed(LinkMethodOwner::Link));
    // A new trait on `Link` may bring methods in scope everywhere (a prelude trait) or
    // wherever it is imported: add them to `LINK_METHODS` and to this list.
    traits.sort();
    assert_eq!(traits, ["Clone", "Debug", "Sender"]);
    let clone = ["clone", "clone_from"].map(|n| LINK_METHODS.iter().any(|(m, _)| *m == n));
    assert_eq!(clone, [true, true]);
}
