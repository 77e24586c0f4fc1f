//! Cost of one password hash and one verification with `Argon2Params::DEFAULT`, the figure
//! its doc comment quotes. Run in release: `CARGO_BUILD_JOBS=1 cargo bench -p auth`.
//!
//! `IASO_ARGON2=m_kib,t,p` measures other parameters instead, to choose new defaults;
//! `IASO_ARGON2_RUNS` sets the number of runs (default 21).

use std::error::Error;
use std::time::Instant;

use auth::password::{self, Argon2Params};

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn params_from_env() -> Result<Argon2Params, Box<dyn Error>> {
    let Ok(text) = std::env::var("IASO_ARGON2") else { return Ok(Argon2Params::DEFAULT) };
    let n = text.split(',').map(|s| s.trim().parse()).collect::<Result<Vec<u32>, _>>()?;
    let [memory_kib, iterations, parallelism] = n[..] else { return Err("IASO_ARGON2=m_kib,t,p".into()) };
    Ok(Argon2Params { memory_kib, iterations, parallelism })
}

fn main() -> Result<(), Box<dyn Error>> {
    // `cargo bench` passes `--bench`; under `cargo test --benches` this only has to compile.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let params = params_from_env()?;
    let runs: usize = std::env::var("IASO_ARGON2_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(21).max(1);
    let pw = "correct horse battery staple";
    let phc = password::hash(pw, &params)?;
    let (mut hashes, mut verifies) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(password::hash(pw, &params)?);
        hashes.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let ok = password::verify(pw, std::hint::black_box(&phc))?;
        verifies.push(start.elapsed().as_secs_f64() * 1e3);
        if !ok {
            return Err("the password did not verify".into());
        }
    }
    println!(
        "argon2id m={} KiB t={} p={}: median {:.1} ms per hash, {:.1} ms per verify ({runs} runs)",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        median_ms(hashes),
        median_ms(verifies)
    );
    Ok(())
}
