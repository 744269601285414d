//! `dockerfile_analysis::base_images` on the three hostile inputs of issue 14 (item 3), each
//! at a few sizes:
//! - `glob_trim`: `ARG V=<n × a>` and `FROM x${V%%*a*a*a*a*a*a*a*a*b}`, a longest-suffix trim
//!   whose pattern never matches (a backtracking matcher tries every way to split the value
//!   between the stars);
//! - `nested_default`: `FROM ${A:-${A:-…img…}}` nested n deep (beyond the nesting limit the
//!   result is the nesting error, which is what is timed then);
//! - `stage_chain`: n stages, each `FROM` the previous one, the first from an image that every
//!   stage then needs.
//!
//! Before the fix the largest sizes took seconds (the glob and the stages) or overflowed the
//! stack (the nesting); run one group with `cargo bench -p benchmarks --bench dockerfile --
//! glob_trim`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use dockerfile_analysis::{NO_BUILD_ARGS, base_images};

/// `ARG V=<n × a>` and a `%%` trim with eight stars that never matches.
fn glob_trim(n: usize) -> String {
    format!(
        "ARG V={}\nFROM x${{V%%*a*a*a*a*a*a*a*a*b}}\n",
        "a".repeat(n)
    )
}

/// `FROM ${A:-${A:-…img…}}`, `depth` substitutions deep.
fn nested_default(depth: usize) -> String {
    format!("FROM {}img{}\n", "${A:-".repeat(depth), "}".repeat(depth))
}

/// `n` stages, each `FROM` the previous one.
fn stage_chain(n: usize) -> String {
    let mut text = String::from("FROM img AS s0\n");
    for i in 1..n {
        text.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    text
}

fn group(c: &mut Criterion, name: &str, sizes: &[usize], input: fn(usize) -> String) {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for &n in sizes {
        let text = input(n);
        group.bench_function(n.to_string(), |b| {
            b.iter(|| base_images(black_box(&text), NO_BUILD_ARGS))
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    group(&mut criterion, "glob_trim", &[16, 24, 32, 40], glob_trim);
    group(
        &mut criterion,
        "nested_default",
        &[10, 60, 1_000, 20_000],
        nested_default,
    );
    group(
        &mut criterion,
        "stage_chain",
        &[1_000, 5_000, 20_000],
        stage_chain,
    );
    criterion.final_summary();
}
