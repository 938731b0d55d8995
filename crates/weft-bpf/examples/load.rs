fn main() {
    match weft_bpf::Sensor::load(&weft_bpf::SensorConfig::default()) {
        Ok(s) => println!("loaded: {:?}", s.kernel_stats()),
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
        }
    }
}
