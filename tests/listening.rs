//! The listening test through the binary: Tables 2 and 3 from a generated ratings
//! file with hand-computed values (labels directly, and anonymous ids with a key),
//! bad ratings files named by line, and the kit (anonymity, one piece per model per
//! group, the blank sheet, MIDI only without FluidSynth, WAV with a stand-in
//! FluidSynth, and a round trip from the kit's sheet and key to the tables).

mod common;

use common::{assert_contains, bin, song};
use museformer::midi;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const HEADER: &str = "rater,group,model,musicality,short_term,long_term,overall";

/// Overall scores per unit (r1/g1, r1/g2, r1/g3, r2/g1, r2/g2, r2/g3).
const MUSEFORMER: [u8; 6] = [7, 8, 9, 10, 10, 10];
const BASELINE: [u8; 6] = [6, 6, 6, 6, 5, 4];
const OTHER: [u8; 6] = [7, 8, 8, 9, 10, 7];

/// The ratings rows `(rater, group, model, musicality, short, long, overall)`:
/// musicality Museformer 8, Baseline 1..6, Other 5; short-term 7 / 2 / 4;
/// long-term 9 / 3 / 6. The models come in a different order in each unit.
fn rows() -> Vec<(String, String, &'static str, [u8; 4])> {
    let mut rows = Vec::new();
    for u in 0..6 {
        let (rater, group) = (format!("r{}", u / 3 + 1), format!("g{}", u % 3 + 1));
        let mut unit = vec![
            ("Museformer", [8, 7, 9, MUSEFORMER[u]]),
            ("Baseline", [u as u8 + 1, 2, 3, BASELINE[u]]),
            ("Other", [5, 4, 6, OTHER[u]]),
        ];
        unit.rotate_left(u % 3);
        for (model, s) in unit {
            rows.push((rater.clone(), group.clone(), model, s));
        }
    }
    rows
}

/// The rows as CSV text, the model column mapped by `id`.
fn csv(rows: &[(String, String, &str, [u8; 4])], id: impl Fn(&str, &str) -> String) -> String {
    let mut text = format!("{HEADER}\n");
    for (rater, group, model, s) in rows {
        text.push_str(&format!(
            "{rater},{group},{},{},{},{},{}\n",
            id(group, model),
            s[0],
            s[1],
            s[2],
            s[3]
        ));
    }
    text
}

/// Runs the binary; returns (success, stdout + stderr).
fn run(args: &[&str], path_env: Option<&Path>) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(args);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `stats listening` on a ratings file; panics with the output on failure.
fn stats(ratings: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "stats",
        "listening",
        ratings.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (ok, text) = run(&args, None);
    assert!(ok, "{text}");
    text
}

/// A CSV file as rows of cells keyed by the first column(s) given.
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col}: {:?}", row[col]))
}

/// The cells of `row` in the columns `cols`.
fn cells<'a>(row: &'a BTreeMap<String, String>, cols: &[&str]) -> Vec<&'a str> {
    cols.iter().map(|c| row[*c].as_str()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Checks Table 2 and Table 3 of the ratings of [`rows`] in `out`.
fn check_tables(out: &Path) {
    // Table 2: the others sorted by label, then the reference.
    let t2 = read_csv(&out.join("table2.csv"));
    let models: Vec<&str> = t2.iter().map(|r| r["model"].as_str()).collect();
    assert_eq!(models, ["Baseline", "Other", "Museformer"]);
    let (b, o, m) = (&t2[0], &t2[1], &t2[2]);
    assert_eq!(b["n"], "6");
    // Baseline musicality 1..6: mean 3.5, Σ(x − 3.5)² = 17.5, sample std √(17.5/5).
    assert!(close(num(b, "musicality_mean"), 3.5));
    assert!(close(num(b, "musicality_std"), 3.5f64.sqrt()));
    assert!(close(num(b, "short_term_mean"), 2.0) && close(num(b, "short_term_std"), 0.0));
    assert!(close(num(b, "long_term_mean"), 3.0));
    // Baseline overall 6 6 6 6 5 4: mean 5.5, Σ squares 0.25·5 + 2.25 = 3.5, std √0.7.
    assert!(close(num(b, "overall_mean"), 5.5));
    assert!(close(num(b, "overall_std"), 0.7f64.sqrt()));
    assert!(close(num(o, "overall_mean"), 49.0 / 6.0));
    assert!(close(num(m, "overall_mean"), 9.0));
    assert!(close(num(m, "musicality_mean"), 8.0) && close(num(m, "long_term_mean"), 9.0));
    // The top overall score per unit: M+O tie, M+O tie, M, M, M+O tie, M: each tie
    // gives 1/2 to each, so Museformer 4.5/6 = 0.75, Other 1.5/6 = 0.25.
    assert!(close(num(m, "preference"), 0.75));
    assert!(close(num(o, "preference"), 0.25));
    assert!(close(num(b, "preference"), 0.0));
    let top = ["sole_top", "shared_top"];
    assert_eq!(cells(m, &top), ["3", "3"]);
    assert_eq!(cells(o, &top), ["0", "3"]);

    // Table 3. Museformer − Baseline = 1..6: 6 wins, exact, W+ = 21, p = 2/64.
    let t3 = read_csv(&out.join("table3.csv"));
    assert_eq!(t3.len(), 2);
    let (vb, vo) = (&t3[0], &t3[1]);
    let test = [
        "reference",
        "model",
        "wins",
        "ties",
        "losses",
        "n_nonzero",
        "method",
    ];
    assert_eq!(
        cells(vb, &test),
        ["Museformer", "Baseline", "6", "0", "0", "6", "exact"]
    );
    assert!(close(num(vb, "w_plus"), 21.0));
    assert!(close(num(vb, "p_value"), 0.03125));
    assert_eq!(vb["z"], "");
    // Museformer − Other = 0 0 1 1 0 3: 3 wins, 3 ties; n = 3 with ranks 1.5 1.5 3,
    // W+ = 6, mean 3, variance 3·4·7/24 − (2³−2)/48 = 3.375, z = 3/√3.375 =
    // 1.632993, p = 2(1 − Φ(z)) = 0.1024704.
    assert_eq!(
        cells(vo, &test),
        ["Museformer", "Other", "3", "3", "0", "3", "normal"]
    );
    assert!(close(num(vo, "z"), 1.632993161855452));
    assert!(close(num(vo, "p_value"), 0.10247043485974947));

    let md2 = std::fs::read_to_string(out.join("table2.md")).unwrap();
    assert!(
        md2.contains(
            "| Baseline | 3.50 ± 1.87 | 2.00 ± 0.00 | 3.00 ± 0.00 | 5.50 ± 0.84 | 0.000 |"
        ),
        "{md2}"
    );
    let md3 = std::fs::read_to_string(out.join("table3.md")).unwrap();
    assert!(
        md3.contains("| Museformer vs Baseline | 6 | 0 | 0 | 0.0312 | exact |"),
        "{md3}"
    );
    assert!(
        md3.contains("| Museformer vs Other | 3 | 3 | 0 | 0.1025 | normal (z = 1.63) |"),
        "{md3}"
    );
    let tex3 = std::fs::read_to_string(out.join("table3.tex")).unwrap();
    assert!(
        tex3.contains("Museformer vs Other & 3 & 3 & 0 & 0.1025 & normal (z = 1.63) \\\\"),
        "{tex3}"
    );
    let tex2 = std::fs::read_to_string(out.join("table2.tex")).unwrap();
    assert!(tex2.contains("Museformer & 8.00 $\\pm$ 0.00"), "{tex2}");
    let prov = std::fs::read_to_string(out.join("provenance.json")).unwrap();
    assert_contains(&prov, &["\"ratings_blake3\"", "\"units\": 6"]);
}

#[test]
fn tables_2_and_3_from_a_generated_ratings_file() {
    let dir = tempfile::tempdir().unwrap();
    let ratings = dir.path().join("ratings.csv");
    std::fs::write(&ratings, csv(&rows(), |_, m| m.to_string())).unwrap();
    let printed = stats(&ratings, &dir.path().join("out"), &[]);
    assert_contains(&printed, &["6 (rater, group) pairs, 3 models"]);
    check_tables(&dir.path().join("out"));

    // The same ratings under anonymous ids, with a different letter order in each
    // group, mapped back through a key: the same tables.
    let letters = |group: &str, model: &str| {
        let order = match group {
            "g1" => ["Other", "Museformer", "Baseline"],
            "g2" => ["Baseline", "Other", "Museformer"],
            _ => ["Museformer", "Baseline", "Other"],
        };
        let i = order.iter().position(|m| *m == model).unwrap();
        format!("piece-{}", ['A', 'B', 'C'][i])
    };
    let mut key = String::from("group,piece,model,source\n");
    for g in ["g1", "g2", "g3"] {
        for m in ["Museformer", "Baseline", "Other"] {
            key.push_str(&format!("{g},{},{m},somewhere/{m}.mid\n", letters(g, m)));
        }
    }
    let key_path = dir.path().join("key.csv");
    std::fs::write(&key_path, key).unwrap();
    let anon = dir.path().join("anonymous.csv");
    std::fs::write(&anon, csv(&rows(), letters)).unwrap();
    let out = dir.path().join("out-key");
    stats(&anon, &out, &["--key", key_path.to_str().unwrap()]);
    check_tables(&out);
    // Without the key, the ids are not models: the message says to pass --key.
    let (ok, text) = run(
        &[
            "stats",
            "listening",
            anon.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && text.contains("--key"), "{text}");

    // Another reference model: Baseline loses every comparison.
    let out = dir.path().join("out-ref");
    stats(&ratings, &out, &["--reference", "Baseline"]);
    let t3 = read_csv(&out.join("table3.csv"));
    assert_eq!(t3[0]["model"], "Museformer");
    assert_eq!(
        (t3[0]["wins"].as_str(), t3[0]["losses"].as_str()),
        ("0", "6")
    );
}

/// Ratings as spreadsheets and slider forms write them: `6.0` is 6, `7.0329` a score
/// of its own, other scales with `--scale`, and the reference matched ignoring case.
#[test]
fn ratings_as_tools_write_them() {
    let dir = tempfile::tempdir().unwrap();
    // The generated ratings with every score written as a decimal: the same tables.
    let text = csv(&rows(), |_, m| m.to_string());
    let mut decimal = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            decimal.push_str(line);
        } else {
            let cells: Vec<String> = line
                .split(',')
                .enumerate()
                .map(|(k, c)| {
                    if k >= 3 {
                        format!("{c}.0")
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            decimal.push_str(&cells.join(","));
        }
        decimal.push('\n');
    }
    let ratings = dir.path().join("decimal.csv");
    std::fs::write(&ratings, &decimal).unwrap();
    let out = dir.path().join("out");
    stats(&ratings, &out, &["--reference", "museformer"]);
    check_tables(&out);

    // Slider scores: one overall score moves by a fraction; the mean follows exactly.
    let slider = decimal.replacen(
        "r1,g1,Museformer,8.0,7.0,9.0,7.0",
        "r1,g1,Museformer,8.0,7.0,9.0,7.0329",
        1,
    );
    assert_ne!(slider, decimal, "the row to edit is not there");
    let ratings = dir.path().join("slider.csv");
    std::fs::write(&ratings, &slider).unwrap();
    let out = dir.path().join("out-slider");
    stats(&ratings, &out, &[]);
    let t2 = read_csv(&out.join("table2.csv"));
    let m = t2.iter().find(|r| r["model"] == "Museformer").unwrap();
    assert!(
        close(num(m, "overall_mean"), (54.0 + 0.0329) / 6.0),
        "{m:?}"
    );

    // Another scale: 0..100 accepts 55 and refuses 101.
    let hundred = decimal.replacen(
        "r1,g1,Museformer,8.0,7.0,9.0,7.0",
        "r1,g1,Museformer,8.0,7.0,9.0,55",
        1,
    );
    let ratings = dir.path().join("hundred.csv");
    std::fs::write(&ratings, &hundred).unwrap();
    let out = dir.path().join("out-100");
    let (ok, text) = run(
        &[
            "stats",
            "listening",
            ratings.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ok && text.contains("outside the scale 1..10"), "{text}");
    stats(&ratings, &out, &["--scale", "0..100"]);
    let prov = std::fs::read_to_string(out.join("provenance.json")).unwrap();
    assert!(prov.contains("\"scale\""), "{prov}");
    let (ok, text) = run(
        &[
            "stats",
            "listening",
            ratings.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--scale",
            "10..1",
        ],
        None,
    );
    assert!(!ok && text.contains("MIN < MAX"), "{text}");
}

#[test]
fn bad_ratings_files_are_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = csv(&rows(), |_, m| m.to_string());
    let lines: Vec<String> = good.lines().map(str::to_string).collect();
    // Line numbers are 1-based: line 1 is the header; line 5 is r1, g2, Baseline
    // (g2 is rotated by one: Baseline, Other, Museformer).
    assert!(lines[4].starts_with("r1,g2,Baseline,"), "{}", lines[4]);
    let edit = |n: usize, f: &dyn Fn(&str) -> String| {
        let mut l = lines.clone();
        l[n - 1] = f(&l[n - 1]);
        l.join("\n") + "\n"
    };
    let set = |col: usize, v: &'static str| {
        move |l: &str| {
            let mut c: Vec<&str> = l.split(',').collect();
            c[col] = v;
            c.join(",")
        }
    };
    let set_overall = |v: &'static str| set(6, v);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "missing cell",
            edit(4, &set_overall("")),
            vec!["ratings.csv line 4", "the cell `overall` is empty"],
        ),
        (
            "short row",
            edit(6, &|l: &str| l.rsplit_once(',').unwrap().0.to_string()),
            vec!["ratings.csv line 6", "6 cells, but the header has 7"],
        ),
        (
            "unknown model",
            edit(5, &|l: &str| l.replace("Baseline", "Baselin")),
            vec!["ratings.csv line 5", "unknown model `Baselin`"],
        ),
        (
            "rater missing a model in a group",
            {
                let mut l = lines.clone();
                l.remove(4);
                l.join("\n") + "\n"
            },
            vec![
                "rater `r1` in group `g2` (lines 5, 6)",
                "no rating of model `Baseline`",
            ],
        ),
        (
            "score out of range",
            edit(7, &set_overall("11")),
            vec![
                "ratings.csv line 7",
                "`overall` is 11, outside the scale 1..10",
                "--scale",
            ],
        ),
        (
            "score zero",
            edit(8, &set(3, "0")),
            vec!["ratings.csv line 8", "`musicality` is 0, outside the scale"],
        ),
        (
            "score not a number",
            edit(9, &set_overall("seven")),
            vec![
                "ratings.csv line 9",
                "`overall` is `seven`; a score is a number on the scale 1..10",
            ],
        ),
        (
            "score not finite",
            edit(9, &set_overall("NaN")),
            vec!["ratings.csv line 9", "`overall` is `NaN`"],
        ),
        (
            "duplicate row",
            format!("{good}{}\n", lines[2]),
            vec![
                "ratings.csv line 20",
                "already rated `Baseline` on line 3",
                "duplicate",
            ],
        ),
        (
            "wrong header",
            good.replacen("short_term", "shortterm", 1),
            vec!["ratings.csv line 1", "no column `short_term`"],
        ),
        (
            "no reference model",
            good.replace("Museformer", "Museformer2"),
            vec!["reference model `Museformer` is not among the rated models"],
        ),
    ];
    for (name, text, wanted) in cases {
        let path = dir.path().join("ratings.csv");
        std::fs::write(&path, text).unwrap();
        let (ok, out) = run(
            &[
                "stats",
                "listening",
                path.to_str().unwrap(),
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ],
            None,
        );
        assert!(!ok, "{name}: accepted:\n{out}");
        for w in wanted {
            assert!(out.contains(w), "{name}: {w:?} not in:\n{out}");
        }
    }

    // With a key: an id the key does not have, and a group it does not have.
    let key = dir.path().join("key.csv");
    std::fs::write(
        &key,
        "group,piece,model\ng1,piece-A,Museformer\ng1,piece-B,Baseline\n",
    )
    .unwrap();
    let ratings = dir.path().join("anon.csv");
    std::fs::write(
        &ratings,
        format!("{HEADER}\nr1,g1,piece-A,5,5,5,5\nr1,g1,piece-F,5,5,5,5\n"),
    )
    .unwrap();
    let args = |r: &Path| {
        vec![
            "stats".to_string(),
            "listening".into(),
            r.display().to_string(),
            "--out".into(),
            dir.path().join("out").display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]
    };
    let a = args(&ratings);
    let (ok, out) = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(
        !ok && out.contains("anon.csv line 3: unknown model `piece-F`"),
        "{out}"
    );
    std::fs::write(&ratings, format!("{HEADER}\nr1,g7,piece-A,5,5,5,5\n")).unwrap();
    let (ok, out) = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(
        !ok && out.contains("anon.csv line 2: group `g7` is not in the key"),
        "{out}"
    );
    // Bad keys: a model twice in a group, a piece twice, groups with different models.
    for (text, wanted) in [
        (
            "g1,piece-A,M\ng1,piece-B,M\n",
            "key.csv line 3: group `g1` has model `M` already on line 2",
        ),
        (
            "g1,piece-A,M\ng1,piece-A,B\n",
            "key.csv line 3: piece `piece-A` of group `g1` is already on line 2",
        ),
        (
            "g1,piece-A,M\ng1,piece-B,B\ng2,piece-A,M\n",
            "group `g2` has the models M but group `g1` has B, M",
        ),
    ] {
        std::fs::write(&key, format!("group,piece,model\n{text}")).unwrap();
        let (ok, out) = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
        assert!(!ok && out.contains(wanted), "{wanted:?} not in {out}");
    }
}

/// Writes `count` small MIDI pieces into `dir`, each track named `label` (the kit
/// must remove the names).
fn model_folder(dir: &Path, label: &str, count: u8, seed0: u8) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let mut s = song(seed0 + i, 2 + u64::from(i));
        for t in &mut s.tracks {
            t.name = label.to_string();
        }
        midi::write_file(&s, &dir.join(format!("piece-{i:03}.mid"))).unwrap();
    }
    dir.to_path_buf()
}

/// A scratch folder with the three model folders of the kit tests and an empty
/// folder, `programs`, to serve as PATH.
fn kit_fixture() -> (tempfile::TempDir, Vec<(String, PathBuf)>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let models = vec![
        (
            "Museformer".into(),
            model_folder(&root.join("mf"), "Museformer", 4, 0),
        ),
        (
            "LabelXL".into(),
            model_folder(&root.join("xl"), "LabelXL", 3, 30),
        ),
        (
            "LabelLin".into(),
            model_folder(&root.join("lin"), "LabelLin", 5, 60),
        ),
    ];
    let programs = root.join("programs");
    std::fs::create_dir_all(&programs).unwrap();
    (dir, models, programs)
}

fn kit_args(models: &[(String, PathBuf)], out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "listening",
        "kit",
        "--groups",
        "3",
        "--raters",
        "2",
        "--seed",
        "7",
    ]
    .map(String::from)
    .to_vec();
    for (l, d) in models {
        a.push("--model".into());
        a.push(format!("{l}={}", d.display()));
    }
    a.push("--out".into());
    a.push(out.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run_owned(args: &[String], path_env: &Path) -> (bool, String) {
    run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(path_env),
    )
}

#[test]
fn the_kit_is_anonymous_and_complete_and_its_ratings_round_trip() {
    let (dir, models, empty_path) = kit_fixture();
    let out = dir.path().join("kit");
    let (ok, text) = run_owned(&kit_args(&models, &out, &[]), &empty_path);
    assert!(ok, "{text}");
    // No fluidsynth on PATH: it says MIDI only, and how to get WAV.
    assert_contains(&text, &["MIDI only: fluidsynth is not on PATH"]);
    let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
    assert_contains(
        &readme,
        &["MIDI only", "apt-get install fluidsynth fluid-soundfont-gm"],
    );

    // The key: 3 groups x 3 models, each group one piece of each model under
    // piece-A..C, no source used twice.
    let key = read_csv(&out.join("key.csv"));
    assert_eq!(key.len(), 9);
    let mut by_group: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut sources = BTreeSet::new();
    for row in &key {
        by_group
            .entry(row["group"].clone())
            .or_default()
            .insert(row["piece"].clone(), row["model"].clone());
        assert!(
            sources.insert(row["source"].clone()),
            "{} used twice",
            row["source"]
        );
        // The anonymous file is its source's music (so the key is right), without names.
        let anon = midi::read_file(
            &out.join("for-raters")
                .join(&row["group"])
                .join(format!("{}.mid", row["piece"])),
        )
        .unwrap();
        let src = midi::read_file(Path::new(&row["source"])).unwrap();
        let notes = |s: &midi::Score| s.tracks.iter().map(|t| t.notes.clone()).collect::<Vec<_>>();
        assert_eq!(notes(&anon), notes(&src), "{row:?}");
        assert!(src.tracks.iter().all(|t| t.name == row["model"]));
        assert!(anon.tracks.iter().all(|t| t.name.is_empty()), "{row:?}");
    }
    assert_eq!(
        by_group.keys().collect::<Vec<_>>(),
        ["group-01", "group-02", "group-03"]
    );
    for (g, pieces) in &by_group {
        assert_eq!(
            pieces.keys().collect::<Vec<_>>(),
            ["piece-A", "piece-B", "piece-C"],
            "{g}"
        );
        let m: BTreeSet<&String> = pieces.values().collect();
        assert_eq!(m.len(), 3, "{g}: {pieces:?}");
    }
    // Nothing the raters get names a model, in file names or contents.
    for entry in walkdir::WalkDir::new(out.join("for-raters")) {
        let entry = entry.unwrap();
        let name = entry.path().display().to_string();
        let bytes = if entry.file_type().is_file() {
            std::fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        for (label, _) in &models {
            assert!(!name.contains(label.as_str()), "{name}");
            assert!(
                !bytes.windows(label.len()).any(|w| w == label.as_bytes()),
                "{name} contains {label}"
            );
        }
    }
    assert!(out.join("for-raters/instructions.txt").is_file());
    let kit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("kit.json")).unwrap()).unwrap();
    assert_eq!(
        (
            kit["seed"].as_u64(),
            kit["groups"].as_u64(),
            kit["raters"].as_u64()
        ),
        (Some(7), Some(3), Some(2))
    );
    assert_eq!(kit["models"][2]["midi_files"].as_u64(), Some(5));
    assert_eq!(kit["rendered"].as_bool(), Some(false));

    // The blank sheet: raters x groups x pieces rows, scores empty.
    let sheet = std::fs::read_to_string(out.join("for-raters/ratings.csv")).unwrap();
    let lines: Vec<&str> = sheet.lines().collect();
    assert_eq!(lines[0], HEADER);
    assert_eq!(lines.len(), 1 + 2 * 3 * 3);
    assert_eq!(lines[1], "rater-01,group-01,piece-A,,,,");
    assert_eq!(lines[18], "rater-02,group-03,piece-C,,,,");
    // Unfilled, it is refused with the first empty cell's line.
    let (ok, text) = run(
        &[
            "stats",
            "listening",
            out.join("for-raters/ratings.csv").to_str().unwrap(),
            "--out",
            dir.path().join("t").to_str().unwrap(),
            "--key",
            out.join("key.csv").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !ok && text.contains("ratings.csv line 2: the cell `musicality` is empty"),
        "{text}"
    );

    // Filled in through the key (Museformer 9, LabelXL 5, LabelLin 7), the tables
    // see the models behind the letters.
    let mut filled = format!("{HEADER}\n");
    for l in &lines[1..] {
        let c: Vec<&str> = l.split(',').collect();
        let score = match by_group[c[1]][c[2]].as_str() {
            "Museformer" => 9,
            "LabelXL" => 5,
            _ => 7,
        };
        filled.push_str(&format!(
            "{},{},{},{score},{score},{score},{score}\n",
            c[0], c[1], c[2]
        ));
    }
    let ratings = dir.path().join("filled.csv");
    std::fs::write(&ratings, filled).unwrap();
    let tables = dir.path().join("tables");
    stats(
        &ratings,
        &tables,
        &["--key", out.join("key.csv").to_str().unwrap()],
    );
    let t2 = read_csv(&tables.join("table2.csv"));
    let means: Vec<(&str, f64)> = t2
        .iter()
        .map(|r| (r["model"].as_str(), num(r, "overall_mean")))
        .collect();
    assert_eq!(
        means,
        [("LabelLin", 7.0), ("LabelXL", 5.0), ("Museformer", 9.0)]
    );
    let t3 = read_csv(&tables.join("table3.csv"));
    for r in &t3 {
        assert_eq!(
            (r["wins"].as_str(), r["ties"].as_str(), r["losses"].as_str()),
            ("6", "0", "0")
        );
        // Six equal differences: tied magnitudes, so the normal approximation:
        // W+ = 21, mean 10.5, variance 22.75 − (216 − 6)/48 = 18.375, z = 2.449490,
        // p = 0.0143059.
        assert_eq!(r["method"], "normal");
        assert!(
            (num(r, "p_value") - 0.014305878435429631).abs() < 1e-9,
            "{r:?}"
        );
    }

    // The same seed gives the same kit; the output folder must be new.
    let again = dir.path().join("kit2");
    let (ok, text) = run_owned(&kit_args(&models, &again, &[]), &empty_path);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("key.csv")).unwrap(),
        std::fs::read_to_string(again.join("key.csv")).unwrap()
    );
    let (ok, text) = run_owned(&kit_args(&models, &out, &[]), &empty_path);
    assert!(
        !ok && text.contains("already exists and is not empty"),
        "{text}"
    );
}

#[test]
fn the_kit_renders_wav_with_fluidsynth_and_refuses_short_folders() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, models, bin_dir) = kit_fixture();
    // A stand-in fluidsynth that writes its arguments into the -F file.
    let fake = bin_dir.join("fluidsynth");
    std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$3\"\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sf = dir.path().join("gm.sf2");
    std::fs::write(&sf, b"not really a soundfont").unwrap();
    let out = dir.path().join("kit");
    let (ok, text) = run_owned(
        &kit_args(&models, &out, &["--soundfont", sf.to_str().unwrap()]),
        &bin_dir,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("WAV rendered at 44100 Hz") && !text.contains("MIDI only"),
        "{text}"
    );
    let group = out.join("for-raters/group-02");
    let args = std::fs::read_to_string(group.join("piece-B.wav")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let wav = group.join("piece-B.wav");
    let mid = group.join("piece-B.mid");
    assert_eq!(
        args,
        [
            "-ni",
            "-F",
            wav.to_str().unwrap(),
            "-r",
            "44100",
            sf.to_str().unwrap(),
            mid.to_str().unwrap()
        ]
    );
    let kit = std::fs::read_to_string(out.join("kit.json")).unwrap();
    assert!(kit.contains("\"rendered\": true"), "{kit}");

    // Fluidsynth on PATH but no SoundFont: MIDI only, saying why.
    let out2 = dir.path().join("kit-nosf");
    let (ok, text) = run_owned(&kit_args(&models, &out2, &[]), &bin_dir);
    if !Path::new(museformer::listening::kit::DEFAULT_SOUNDFONTS[0]).exists() {
        assert!(
            ok && text.contains("MIDI only: no General MIDI SoundFont"),
            "{text}"
        );
    }
    // A --soundfont that does not exist is an error.
    let (ok, text) = run_owned(
        &kit_args(
            &models,
            &dir.path().join("kit3"),
            &["--soundfont", "/nonexistent/gm.sf2"],
        ),
        &bin_dir,
    );
    assert!(
        !ok && text.contains("the SoundFont /nonexistent/gm.sf2 does not exist"),
        "{text}"
    );

    // Four groups, but LabelXL has three pieces: the error names the model and folder.
    let mut args = kit_args(&models, &dir.path().join("kit4"), &[]);
    args[3] = "4".into();
    let (ok, text) = run_owned(&args, &bin_dir);
    assert!(
        !ok && text.contains(&format!(
            "model `LabelXL`: {} has 3 MIDI files, but 4 groups",
            models[1].1.display()
        )),
        "{text}"
    );
    // A suite file that does not exist is named; a malformed --model is explained.
    let (ok, text) = run_owned(
        &[
            "listening".into(),
            "kit".into(),
            "suite.yaml".into(),
            "--out".into(),
            "x".into(),
        ],
        &bin_dir,
    );
    assert!(!ok && text.contains("suite.yaml"), "{text}");
    let (ok, text) = run_owned(
        &[
            "listening",
            "kit",
            "--model",
            "Museformer",
            "--model",
            "B=b",
            "--out",
            "x",
        ]
        .map(String::from),
        &bin_dir,
    );
    assert!(
        !ok && text.contains("--model `Museformer`: expected LABEL=DIR"),
        "{text}"
    );
}
