//! `museformer eval`'s repetition perplexity end to end: on generated songs whose
//! bars repeat every two bars, the tokens of repeated bars land in the distance-2
//! group, the groups partition the longest length's tokens, `repetition.csv` and
//! the `repetition` section of `eval.json` are written, and the existing
//! perplexity fields are unchanged.

mod common;

use common::*;

#[test]
fn eval_reports_repeated_bars_by_distance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `common::song`: the melody alternates two bars and the bass is constant, so
    // (with every note counted) each bar from the third on repeats the bar two back.
    let data = tiny_dataset(dir, 12, 4);
    let exp = tiny_experiment(dir, "tiny", &data, "layers: 1", "steps: 2, warmup: 1");
    let run_dir = train(&exp, &dir.join("runs"), &[]);
    let out = run(&["eval", arg(&run_dir)]);
    assert_contains(
        &out,
        &[
            "first    128 tokens: PPL",
            "perplexity of repeated bars (first 128 tokens; bar notes: all)",
            "1 bar back: -  (no tokens)",
            "2 bars back: PPL",
            "no earlier copy: PPL",
            "outside bars (</s>)",
        ],
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
    let ppl = json["perplexity"].as_array().unwrap();
    let mut keys: Vec<&String> = ppl[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["full_songs", "length", "nll", "ppl", "songs", "tokens"],
        "the perplexity rows keep their fields"
    );
    let longest = ppl.last().unwrap();
    assert_eq!(longest["length"], 128);
    assert_eq!(json["repetition_length"], 128);
    assert_eq!(json["repetition_instrument"], "all");
    let rows = json["repetition"].as_array().unwrap();
    let distances: Vec<&str> = rows
        .iter()
        .map(|r| r["distance"].as_str().unwrap())
        .collect();
    assert_eq!(
        distances,
        ["1", "2", "4", "8", "12", "16", "24", "32", "other", "none", "outside"]
    );
    let tokens = |d: &str| {
        rows.iter().find(|r| r["distance"] == d).unwrap()["tokens"]
            .as_u64()
            .unwrap()
    };
    assert!(tokens("2") > 0, "{rows:?}");
    assert!(tokens("none") > 0, "{rows:?}");
    // The nearest copy is always 2 bars back, never 1 or 4.
    for d in ["1", "4", "8", "other"] {
        assert_eq!(tokens(d), 0, "{d}: {rows:?}");
    }
    // One `</s>` per song that ends within the first 128 targets.
    let songs_ending = longest["songs"].as_u64().unwrap() - longest["full_songs"].as_u64().unwrap();
    assert_eq!(tokens("outside"), songs_ending);
    let total: u64 = rows.iter().map(|r| r["tokens"].as_u64().unwrap()).sum();
    assert_eq!(total, longest["tokens"].as_u64().unwrap());
    // Groups with tokens have a perplexity; the rest `null`.
    for r in rows {
        assert_eq!(r["ppl"].is_null(), r["tokens"] == 0, "{r}");
    }
    // The token-weighted mean of the groups' NLL is the longest length's NLL.
    let weighted: f64 = rows
        .iter()
        .filter(|r| r["tokens"] != 0)
        .map(|r| r["nll"].as_f64().unwrap() * r["tokens"].as_f64().unwrap())
        .sum::<f64>()
        / total as f64;
    let nll = longest["nll"].as_f64().unwrap();
    assert!(
        (weighted - nll).abs() < 1e-4 * nll,
        "{weighted} against {nll}"
    );

    let csv = std::fs::read_to_string(run_dir.join("repetition.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "distance,ppl,nll,bars,tokens");
    assert_eq!(lines.len(), 12, "{csv}");
    assert!(lines[1].starts_with("1,,,0,0"), "{csv}");

    // Another note selection (the melody when the normalization found one, else
    // every pitched note): both the melody and the bass repeat every two bars.
    let out = run(&["eval", arg(&run_dir), "--instrument", "auto"]);
    assert_contains(&out, &["bar notes: auto", "2 bars back: PPL"]);
    let err = fails(&["eval", arg(&run_dir), "--instrument", "melody"]);
    assert_contains(&err, &["`melody` is not an instrument selection"]);
}
