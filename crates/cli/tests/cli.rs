//! Command-line cases: each file in tests/cmd fixes the arguments, the exit
//! code and the exact output.

#[test]
fn cli_cases() {
    trycmd::TestCases::new()
        .case("tests/cmd/*.toml")
        .case("tests/cmd/*.trycmd");
}
