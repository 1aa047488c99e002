//! The Wilcoxon signed-rank test of the listening statistics against SciPy's
//! `scipy.stats.wilcoxon`: p-values and statistics of integer, continuous, tied,
//! zero-difference and large-n cases, computed by SciPy into
//! `tests/reference/wilcoxon_scipy.json` (`tests/reference/wilcoxon_fixtures.py`
//! writes it; the SciPy version is in the file).

use museformer::listening::{wilcoxon_signed_rank, Method};

#[test]
fn p_values_match_scipy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/wilcoxon_scipy.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "{fixture}");
    let mut methods = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let d: Vec<f64> = case["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let w = wilcoxon_signed_rank(&d).unwrap();
        let method = match w.method {
            Method::Exact => "exact",
            Method::Normal => "normal",
            Method::NoDifferences => "none",
        };
        assert_eq!(method, case["method"].as_str().unwrap(), "{name}");
        methods.push(method);
        let want = case["p_value"].as_f64().unwrap();
        assert!(
            (w.p_value - want).abs() <= 1e-9 * want.max(1e-12),
            "{name}: p {} against SciPy's {want}",
            w.p_value
        );
        let stat = case["statistic_min_w"].as_f64().unwrap();
        assert_eq!(w.w_plus.min(w.w_minus), stat, "{name}");
    }
    // Both paths are covered.
    assert!(methods.contains(&"exact") && methods.contains(&"normal"));
}
