//! Decoding and encoding small seed frames: protolink's generated code against hand-written
//! `#[serde(tag = "...")]` enums, side by side in one run.
//!
//! ```text
//! cargo bench -p protolink-bench --bench codec
//! ```
//!
//! First divan times every selection (all frames, each protocol's frames, each frame) for both
//! codecs. Then, in the same process, an interleaved run measures the ratios directly: each round
//! times one batch of the generated codec and one of the serde baseline back to back (alternating
//! which goes first), and the table reports the median of the per-round ratios, so load that
//! comes and goes on the machine hits both sides alike. `BENCHMARKS.md` explains the method.

use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use divan::Bencher;
use divan::counter::ItemsCount;
use protolink_bench::BenchError;
use protolink_bench::cases::{self, Case, Codec, Protocol};

static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| match cases::all() {
    Ok(cases) => cases,
    Err(e) => panic!("a seed frame does not decode: {e}"),
});

fn main() {
    // Fail on a broken case before timing anything.
    LazyLock::force(&CASES);
    divan::main();
    let args: Vec<String> = std::env::args().collect();
    let benching =
        args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list");
    if benching {
        ratios::print(&CASES);
    }
}

/// `all`, each protocol, then each frame as `protocol/name`.
fn selections() -> impl Iterator<Item = String> {
    std::iter::once("all".to_owned())
        .chain(Protocol::ALL.iter().map(|p| p.name().to_owned()))
        .chain(CASES.iter().map(Case::id))
}

/// Litecord's selections, for its second baseline.
fn litecord_selections() -> impl Iterator<Item = String> {
    std::iter::once("litecord".to_owned()).chain(
        CASES
            .iter()
            .filter(|c| c.protocol == Protocol::Litecord)
            .map(Case::id),
    )
}

fn selected(selection: &str) -> Vec<&'static Case> {
    CASES
        .iter()
        .filter(|c| selection == "all" || c.protocol.name() == selection || c.id() == selection)
        .collect()
}

fn must(result: Result<(), BenchError>) {
    if let Err(e) = result {
        panic!("codec failed under benchmark: {e}");
    }
}

/// Decodes each frame of the selection once per iteration.
fn bench_decode(bencher: Bencher, selection: &str, codec: fn(&Case) -> Option<&Codec>) {
    let cases: Vec<(&Codec, &str)> = selected(selection)
        .into_iter()
        .filter_map(|c| codec(c).map(|codec| (codec, c.frame)))
        .collect();
    bencher
        .counter(ItemsCount::new(cases.len()))
        .bench_local(|| {
            for (codec, frame) in &cases {
                must(codec.decode(black_box(frame)));
            }
        });
}

/// Encodes each frame of the selection once per iteration, into a reused buffer.
fn bench_encode(bencher: Bencher, selection: &str, codec: fn(&Case) -> &Codec) {
    let cases: Vec<&Codec> = selected(selection).into_iter().map(codec).collect();
    let mut out = Vec::with_capacity(1024);
    bencher
        .counter(ItemsCount::new(cases.len()))
        .bench_local(|| {
            for codec in &cases {
                out.clear();
                must(codec.encode(&mut out));
                black_box(&out);
            }
        });
}

#[divan::bench_group(sample_count = 200)]
mod decode {
    use super::*;

    /// `WireProfile::classify` + the generated `Inbound::decode` (or the reply type).
    #[divan::bench(args = selections())]
    fn generated(bencher: Bencher, selection: &str) {
        bench_decode(bencher, selection, |c| Some(&c.generated));
    }

    /// `serde_json::from_str` of a `#[serde(tag = "...")]` enum (Litecord: `Value` + match).
    #[divan::bench(args = selections())]
    fn serde_tagged(bencher: Bencher, selection: &str) {
        bench_decode(bencher, selection, |c| Some(&c.serde));
    }

    /// Litecord only: read `op` in a first pass, then the payload struct in a second.
    #[divan::bench(args = litecord_selections())]
    fn serde_two_pass(bencher: Bencher, selection: &str) {
        bench_decode(bencher, selection, |c| c.serde_two_pass.as_ref());
    }
}

#[divan::bench_group(sample_count = 200)]
mod encode {
    use super::*;

    /// `encode_message`, or `to_raw_value` + `encode_reply` for replies.
    #[divan::bench(args = selections())]
    fn generated(bencher: Bencher, selection: &str) {
        bench_encode(bencher, selection, |c| &c.generated);
    }

    /// `serde_json::to_writer` of the tagged enum (Litecord: `op` + flattened payload).
    #[divan::bench(args = selections())]
    fn serde_tagged(bencher: Bencher, selection: &str) {
        bench_encode(bencher, selection, |c| &c.serde);
    }
}

/// The interleaved ratio run.
mod ratios {
    use super::*;

    /// Rounds per ratio; odd, so the median is one of them.
    const ROUNDS: usize = 51;
    /// The least time one batch of one side takes.
    const BATCH: Duration = Duration::from_micros(400);

    #[derive(Clone, Copy)]
    enum Op {
        Decode,
        Encode,
    }

    /// Runs `codec` over the cases `iterations` times and returns the time taken.
    fn run(
        cases: &[&Case],
        pick: fn(&Case) -> Option<&Codec>,
        op: Op,
        iterations: u32,
    ) -> Duration {
        let mut out = Vec::with_capacity(1024);
        let start = Instant::now();
        for _ in 0..iterations {
            for case in cases {
                let Some(codec) = pick(case) else { continue };
                match op {
                    Op::Decode => must(codec.decode(black_box(case.frame))),
                    Op::Encode => {
                        out.clear();
                        must(codec.encode(&mut out));
                        black_box(&out);
                    }
                }
            }
        }
        start.elapsed()
    }

    struct Measured {
        /// Median of serde time ÷ generated time over the rounds.
        ratio: f64,
        /// Lowest and highest per-round ratio.
        spread: (f64, f64),
        /// Median nanoseconds per frame, generated and baseline.
        ns: (f64, f64),
    }

    fn median(values: &mut [f64]) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    fn measure(
        cases: &[&Case],
        generated: fn(&Case) -> Option<&Codec>,
        baseline: fn(&Case) -> Option<&Codec>,
        op: Op,
    ) -> Measured {
        let frames = cases
            .iter()
            .filter(|c| baseline(c).is_some())
            .count()
            .max(1);
        let mut iterations = 1u32;
        while run(cases, generated, op, iterations) < BATCH && iterations < 1 << 24 {
            iterations *= 2;
        }
        let per_frame = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(iterations) / frames as f64;
        let (mut ratios, mut gen_ns, mut base_ns) = (vec![], vec![], vec![]);
        for round in 0..ROUNDS {
            let (g, b) = if round % 2 == 0 {
                let g = run(cases, generated, op, iterations);
                (g, run(cases, baseline, op, iterations))
            } else {
                let b = run(cases, baseline, op, iterations);
                (run(cases, generated, op, iterations), b)
            };
            ratios.push(b.as_secs_f64() / g.as_secs_f64());
            gen_ns.push(per_frame(g));
            base_ns.push(per_frame(b));
        }
        let spread = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        Measured {
            ratio: median(&mut ratios),
            spread,
            ns: (median(&mut gen_ns), median(&mut base_ns)),
        }
    }

    fn row(label: &str, m: &Measured) {
        println!(
            "| {label} | {:.2}× | {:.2}–{:.2} | {:.0} | {:.0} |",
            m.ratio, m.spread.0, m.spread.1, m.ns.0, m.ns.1
        );
    }

    /// Measures and prints every ratio as Markdown tables.
    pub(super) fn print(cases: &'static [Case]) {
        let mut selections: Vec<(String, Vec<&Case>)> =
            vec![("all".to_owned(), cases.iter().collect())];
        for protocol in Protocol::ALL {
            let of = cases.iter().filter(|c| c.protocol == protocol).collect();
            selections.push((protocol.name().to_owned(), of));
        }
        for case in cases {
            selections.push((case.id(), vec![case]));
        }
        let generated: fn(&Case) -> Option<&Codec> = |c| Some(&c.generated);
        let serde: fn(&Case) -> Option<&Codec> = |c| Some(&c.serde);
        let two_pass: fn(&Case) -> Option<&Codec> = |c| c.serde_two_pass.as_ref();

        println!();
        println!("Ratios, interleaved (serde time ÷ generated time: above 1 = generated faster).");
        for (title, op) in [("decode", Op::Decode), ("encode", Op::Encode)] {
            println!();
            println!("{title}: generated vs serde-tagged");
            println!();
            println!("| frames | ratio (median) | min–max | generated ns/frame | serde ns/frame |");
            println!("|---|---|---|---|---|");
            for (label, of) in &selections {
                row(label, &measure(of, generated, serde, op));
            }
        }
        println!();
        println!("decode: generated vs serde two-pass (Litecord's second baseline)");
        println!();
        println!("| frames | ratio (median) | min–max | generated ns/frame | two-pass ns/frame |");
        println!("|---|---|---|---|---|");
        for (label, of) in &selections {
            if of.iter().all(|c| c.protocol == Protocol::Litecord) {
                row(label, &measure(of, generated, two_pass, Op::Decode));
            }
        }
    }
}
