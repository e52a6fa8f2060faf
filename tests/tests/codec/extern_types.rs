//! `Config::extern_type`: the test maps the definition's `mapped.Reading` to its own `Reading`
//! (tests/build.rs), and the generated module uses that type instead of generating one.

use protolink::{Inbound, Validate, ValidationErrors, Validator};

/// The program's own reading: the definition's constraint (`-2730..=10000`) is this type's to
/// keep, in its `Validate`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    protolink::__private::Serialize,
    protolink::__private::Deserialize,
    protolink::__private::JsonSchema,
)]
#[serde(crate = "protolink::__private::serde")]
#[schemars(crate = "protolink::__private::schemars")]
#[allow(unreachable_pub)] // The generated module re-exports it.
pub struct Reading {
    pub tenths: i64,
}

impl Reading {
    fn celsius(&self) -> f64 {
        self.tenths as f64 / 10.0
    }
}

impl Validate for Reading {
    fn validate_into(&self, v: &mut Validator) {
        if !(-2730..=10000).contains(&self.tenths) {
            v.field("tenths", |v| v.fail("must be within -2730..=10000"));
        }
    }
}

protolink::extern_type!(Reading, validated);

/// The bindings, as a user's crate would include them (here only part of them is used).
#[allow(dead_code, unreachable_pub)]
mod generated {
    protolink::include_protocol!("mapped");
}

use generated::mapped::{self, ClientToServer};

#[test]
fn a_mapped_type_is_the_programs_own() {
    // The generated module's `Reading` is this one: its methods work on decoded values.
    let report: mapped::Report = mapped::Report {
        reading: Reading { tenths: 215 },
        place: "roof".into(),
    };
    assert_eq!(report.reading.celsius(), 21.5);
    let frame = r#"{"type":"report","reading":{"tenths":-40},"place":"cellar"}"#;
    let wire = <mapped::Mapped as protolink::Protocol>::WIRE;
    let protolink::__private::RawFrame::Message(raw) = wire.classify(frame).expect("a frame")
    else {
        panic!("a message");
    };
    let ClientToServer::Report(decoded) = ClientToServer::decode(&raw).expect("a report");
    assert_eq!(decoded.reading, Reading { tenths: -40 });
    assert_eq!(decoded.reading.celsius(), -4.0);
    // The type's own checks run where the generated ones would.
    let cold = mapped::Report {
        reading: Reading { tenths: -3000 },
        place: "space".into(),
    };
    let errors: ValidationErrors = cold.validate().expect_err("too cold");
    assert!(errors.to_string().contains("tenths"), "{errors}");
}
