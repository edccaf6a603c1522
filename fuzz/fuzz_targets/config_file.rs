//! Any text as the config file: parsed and checked, or refused with a message, never a
//! panic. A config that parses passes `check()` again and survives its own `to_toml()`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redeemd::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(config) => {
            assert_eq!(config.check(), Ok(()));
            let _ = (config.database_path(), config.trust_keys_path(), config.token_path(), config.timezone());
            let written = config.to_toml();
            match Config::parse(&written) {
                Ok(again) => assert_eq!(again, config, "{written}"),
                Err(e) => panic!("to_toml() output does not parse: {e}\n{written}"),
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
