//! The one `init` of every test and bench terminal (merchant M-000123, category dining),
//! so tests and benches set a terminal up the same way. Shared with `benches/` by path.

/// `init`'s arguments for a terminal whose data lives in `data`, trusting the rule-set
/// keys in `anchors`, speaking `language`.
pub fn init_args(data: &str, anchors: &str, language: &str) -> Vec<String> {
    [
        "init",
        "--data-dir",
        data,
        "--merchant-id",
        "M-000123",
        "--merchant-category",
        "dining",
        "--trust-key",
        anchors,
        "--language",
        language,
    ]
    .map(str::to_owned)
    .to_vec()
}
