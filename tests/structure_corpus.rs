//! Structure statistics on the real default corpus (`corpora/`, Bach chorales and
//! O'Neill's folk tunes, fetched by `just corpus`): reading the MIDI folder and
//! reading the prepared dataset give the same distribution, the splits add up, the
//! 4-bar periodicity the paper reports is there, bar selection picks multiples of 4,
//! and the similarity error of a corpus against itself is 0.

use museformer::data::{self, DatasetConfig, Split};
use museformer::structure::input::{self, InputKind, LoadOptions};
use museformer::structure::{select_bars, similarity_error, InstrumentSelection};
use std::path::Path;

const T: usize = 40;

fn corpus_dir() -> &'static Path {
    let dir = Path::new("corpora");
    assert!(
        dir.join("bach").is_dir() && dir.join("folk").is_dir(),
        "the default corpus is missing: run `just corpus` to fetch it into corpora/"
    );
    dir
}

fn options(split: Option<Split>) -> LoadOptions {
    LoadOptions {
        max_interval: T,
        selection: InstrumentSelection::Auto,
        split,
        data: input::data_config(None).expect("the built-in default dataset file parses"),
    }
}

#[test]
fn midi_folder_and_prepared_dataset_agree_on_the_default_corpus() {
    let midi = input::load(corpus_dir(), &options(None)).unwrap();
    assert_eq!(midi.kind, InputKind::Midi);
    let d = &midi.distribution;
    let c = d.counts;
    println!(
        "default corpus: {} songs used of {}, {} files skipped, {} bars, {} pairs",
        c.songs_used,
        c.songs,
        midi.skipped.len(),
        c.bars,
        d.total_pairs()
    );
    assert!(c.songs_used > 400, "{c:?}");
    assert!(d.total_pairs() > 50_000);
    assert_eq!(
        c.songs + midi.skipped.len() as u64,
        2249,
        "every file is a song or a listed skip"
    );

    // The same files through `data prepare` (same settings) and the token store.
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: DatasetConfig = input::data_config(None).unwrap();
    cfg.midi_dir = corpus_dir().to_path_buf();
    cfg.out = tmp.path().join("default");
    data::prepare(&cfg, false).unwrap();
    let prepared = input::load(&cfg.out, &options(None)).unwrap();
    assert_eq!(prepared.kind, InputKind::Dataset);
    let p = &prepared.distribution;
    assert_eq!(p.counts, d.counts);
    for t in 1..=T {
        let (a, b) = (d.interval(t).unwrap(), p.interval(t).unwrap());
        assert_eq!(
            (a.pairs, a.identical, a.songs),
            (b.pairs, b.identical, b.songs),
            "t = {t}"
        );
        assert!((a.sum - b.sum).abs() < 1e-9, "t = {t}");
    }

    // The three splits partition the songs and the pairs.
    let parts: Vec<_> = Split::ALL
        .iter()
        .map(|&s| {
            input::load(&cfg.out, &options(Some(s)))
                .unwrap()
                .distribution
        })
        .collect();
    assert_eq!(
        parts.iter().map(|x| x.counts.songs).sum::<u64>(),
        p.counts.songs
    );
    assert_eq!(
        parts.iter().map(|x| x.total_pairs()).sum::<u64>(),
        p.total_pairs()
    );

    // The structure the paper describes: a bar is more like the bar 4 (and 8) back
    // than its neighbours at 3 and 5 (7 and 9).
    let l = |t: usize| d.mean(t).unwrap();
    println!("L_1..8 = {:?}", (1..=8).map(l).collect::<Vec<_>>());
    assert!(l(4) > l(3) && l(4) > l(5), "{:?}", (l(3), l(4), l(5)));
    assert!(l(8) > l(7) && l(8) > l(9), "{:?}", (l(7), l(8), l(9)));
    for t in 1..=T {
        let s = d.interval(t).unwrap();
        if let Some(m) = s.mean() {
            assert!(
                (0.0..=1.0).contains(&m) && s.std().unwrap().is_finite(),
                "t = {t}"
            );
        }
    }
    let sel = select_bars(d, 8, 10, &[]).unwrap();
    assert!(
        sel.chosen.contains(&4) && sel.chosen.contains(&8),
        "{:?}",
        sel.chosen
    );

    // SE of a corpus against itself is 0; of the training split against the whole, small.
    assert_eq!(similarity_error(d, d, T).unwrap().value, 0.0);
    assert!(similarity_error(p, d, T).unwrap().value < 1e-12);
    let se = similarity_error(&parts[0], p, T).unwrap();
    println!(
        "SE(train split vs all) = {:.2} %, over {} intervals",
        se.percent(),
        se.intervals.len()
    );
    assert!(se.percent() < 5.0, "{se:?}");
}
