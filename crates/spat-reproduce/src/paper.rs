//! The thesis's reported results, transcribed as data (Kim, "Semantics-Preserving Adversarial
//! Training", chapters 5 and 6; `shared/reference/spat-thesis.txt`).
//!
//! Numbers are kept as the strings the thesis prints (`"63.00"`, `"25.3"`), so that results.md shows
//! them exactly as published; [`value`] parses them. Figures 5.1, 5.2, 5.3, 6.1 and 6.2 are plots
//! without printed numbers: for them only what the text states is kept ([`Figure`]).
//!
//! `tests/paper.rs` checks every table (captions, columns, row labels, recipes, values) against a
//! verbatim excerpt of the thesis text committed in `tests/fixtures/thesis-tables.txt`, and that
//! excerpt against the thesis itself.

use spat_spec::Method;

/// A column of a paper table: what it measures and the `spat eval` attack that measures it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header as printed in the thesis.
    pub header: &'static str,
    /// Attack spec passed to `spat eval --attacks` (`clean` for natural accuracy); also the key
    /// of the value in `spat eval --json`.
    pub attack: &'static str,
}

/// How a row's model is trained: the `spat train --method` and `--spat-alpha` of that row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// The `spat train --method` of the row.
    pub method: Method,
    /// Label-smoothing α of SPAT's PGD-LS inner maximisation; `None` = the method's own attack.
    pub spat_alpha: Option<f64>,
}

/// One row of a paper table, values in column order, as printed (percent).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The row's label as the thesis prints it.
    pub label: &'static str,
    /// For tables whose rows are trained models (Tables 6.1–6.4); `None` for Tables 5.1/5.2,
    /// whose single row is one model under several attacks.
    pub recipe: Option<Recipe>,
    /// The thesis's values in column order, as printed (`57.31`).
    pub values: &'static [&'static str],
}

/// A table of the thesis.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// `table6.1`, ...: what `cargo xtask reproduce` takes.
    pub id: &'static str,
    /// Where it is: table number and section.
    pub source: &'static str,
    /// The thesis's caption.
    pub caption: &'static str,
    /// The columns, each with the attack that measures it.
    pub columns: &'static [Column],
    /// The rows, in the thesis's order.
    pub rows: &'static [Row],
}

/// A figure of the thesis: no numbers are printed, so only the text's statements are kept.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// `fig5.3`, ...: what `cargo xtask reproduce` takes.
    pub id: &'static str,
    /// Figure number and section.
    pub source: &'static str,
    /// The thesis's caption.
    pub caption: &'static str,
    /// What the text says about the figure, closely paraphrased, with its section.
    pub statements: &'static [&'static str],
}

const fn recipe(method: Method, spat_alpha: Option<f64>) -> Option<Recipe> {
    Some(Recipe { method, spat_alpha })
}

const NATURAL: Column = Column {
    header: "Natural",
    attack: "clean",
};
const FGSM: Column = Column {
    header: "FGSM",
    attack: "fgsm",
};
const PGD20: Column = Column {
    header: "PGD-20",
    attack: "pgd20",
};
const CW: Column = Column {
    header: "CW∞",
    attack: "cw30",
};
/// Table 6.3's "PGD-20 (settings in \[39\])" (§6.1.2): RST's evaluation PGD as semisup-adv runs
/// it (`attack_evaluation.py`: ε 0.031, line 123; step 0.01, line 130; 5 restarts, line 132;
/// random start, lines 134-136; an example robust only if correct at every iterate of every
/// restart, lines 58-60, and `attack_pgd.py` lines 46-48), with the thesis's 20 steps (the
/// script's default is 40, line 128).
pub const RST_PGD20: Column = Column {
    header: "PGD-20",
    attack: "pgd20x5@step=0.01@eps=0.031@every-iterate",
};
const PGD_KL: Column = Column {
    header: "PGD-KL",
    attack: "pgd-kl",
};

/// Table 5.1 (§5.2): a standard model under PGD-KL and PGD-LS with several α.
pub const TABLE_5_1: Table = Table {
    id: "table5.1",
    source: "Table 5.1, §5.2",
    caption: "Robust accuracy (%) of standard model under PGD-KL and PGD-LS attack with different α values.",
    columns: &[
        PGD_KL,
        Column { header: "PGD-LS α=1e-2", attack: "pgd-ls:0.01" },
        Column { header: "PGD-LS α=1e-3", attack: "pgd-ls:0.001" },
        Column { header: "PGD-LS α=1e-4", attack: "pgd-ls:0.0001" },
        Column { header: "PGD-LS α=5e-5", attack: "pgd-ls:0.00005" },
        Column { header: "PGD-LS α=1e-5", attack: "pgd-ls:0.00001" },
    ],
    rows: &[Row { label: "PGD-20 acc", recipe: None, values: &["47.51", "80.04", "69.23", "51.28", "44.16", "25.3"] }],
};

/// Table 5.2 (§5.2): an adversarially trained model under PGD-KL and PGD-LS with several α.
pub const TABLE_5_2: Table = Table {
    id: "table5.2",
    source: "Table 5.2, §5.2",
    caption: "Robust accuracy (%) of adversarially trained model under PGD-KL and PGD-LS attack with different α values.",
    columns: &[
        PGD_KL,
        Column { header: "PGD-LS α=0.1", attack: "pgd-ls:0.1" },
        Column { header: "PGD-LS α=0.2", attack: "pgd-ls:0.2" },
        Column { header: "PGD-LS α=0.3", attack: "pgd-ls:0.3" },
        Column { header: "PGD-LS α=0.4", attack: "pgd-ls:0.4" },
        Column { header: "PGD-LS α=0.5", attack: "pgd-ls:0.5" },
    ],
    rows: &[Row { label: "PGD-20 acc", recipe: None, values: &["71.58", "57.7", "62.93", "67.7", "72.14", "75.57"] }],
};

/// Table 6.1 (§6.1.1): natural and robust accuracy of WRN-34-10 on CIFAR-10 per training method.
pub const TABLE_6_1: Table = Table {
    id: "table6.1",
    source: "Table 6.1, §6.1.1",
    caption: "Natural and Robust accuracy (%) of WRN-34-10 trained on CIFAR10 dataset.",
    columns: &[NATURAL, FGSM, PGD20, CW],
    rows: &[
        Row {
            label: "Madry",
            recipe: recipe(Method::Madry, None),
            values: &["84.39", "59.93", "56.37", "54.14"],
        },
        Row {
            label: "TRADES",
            recipe: recipe(Method::Trades, None),
            values: &["85.97", "62.29", "57.32", "54.38"],
        },
        Row {
            label: "MART",
            recipe: recipe(Method::Mart, None),
            values: &["83.7", "61.93", "58.46", "53.28"],
        },
        Row {
            label: "TRADES + SPAT (α = 0.1)",
            recipe: recipe(Method::Trades, Some(0.1)),
            values: &["84.6", "61.46", "58.22", "54.97"],
        },
        Row {
            label: "MART + SPAT (α = 0.3)",
            recipe: recipe(Method::Mart, Some(0.3)),
            values: &["81.93", "61.87", "59.59", "51.57"],
        },
    ],
};

/// Table 6.2 (§6.1.1): the same on CIFAR-100.
pub const TABLE_6_2: Table = Table {
    id: "table6.2",
    source: "Table 6.2, §6.1.1",
    caption: "Natural and Robust accuracy (%) of WRN-34-10 trained on CIFAR100 dataset.",
    columns: &[NATURAL, FGSM, PGD20, CW],
    rows: &[
        Row {
            label: "Madry",
            recipe: recipe(Method::Madry, None),
            values: &["61.77", "34.42", "31.51", "30.1"],
        },
        Row {
            label: "TRADES",
            recipe: recipe(Method::Trades, None),
            values: &["57.13", "32.9", "31.02", "28.07"],
        },
        Row {
            label: "MART",
            recipe: recipe(Method::Mart, None),
            values: &["58.56", "36.46", "34.12", "30.16"],
        },
        Row {
            label: "TRADES + SPAT (α = 0.1)",
            recipe: recipe(Method::Trades, Some(0.1)),
            values: &["55.54", "33.35", "31.20", "28.14"],
        },
        Row {
            label: "MART + SPAT (α = 0.2)",
            recipe: recipe(Method::Mart, Some(0.2)),
            values: &["60.28", "36.91", "34.66", "30.93"],
        },
    ],
};

/// Table 6.3 (§6.1.2): WRN-28-10 on CIFAR-10 with RST's 500k pseudo-labelled images.
pub const TABLE_6_3: Table = Table {
    id: "table6.3",
    source: "Table 6.3, §6.1.2",
    caption: "Natural and Robust accuracy (%) of WRN-28-10 trained on CIFAR10 with 500k unlabeled dataset.",
    columns: &[NATURAL, RST_PGD20],
    rows: &[
        Row { label: "RST", recipe: recipe(Method::Rst, None), values: &["89.65", "63.00"] },
        Row { label: "MART", recipe: recipe(Method::Mart, None), values: &["89.81", "63.06"] },
        Row { label: "RST + SPAT (α = 0.1)", recipe: recipe(Method::Rst, Some(0.1)), values: &["89.52", "63.47"] },
        Row { label: "MART + SPAT (α = 0.1)", recipe: recipe(Method::Mart, Some(0.1)), values: &["89.44", "63.37"] },
    ],
};

/// Table 6.4 (§6.1.3): ResNet-18 on STL-10.
pub const TABLE_6_4: Table = Table {
    id: "table6.4",
    source: "Table 6.4, §6.1.3",
    caption: "Natural and Robust accuracy (%) of ResNet-18 trained on STL-10.",
    columns: &[NATURAL, PGD20],
    rows: &[
        Row {
            label: "TRADES",
            recipe: recipe(Method::Trades, None),
            values: &["70.15", "42.16"],
        },
        Row {
            label: "MART",
            recipe: recipe(Method::Mart, None),
            values: &["67.89", "44.24"],
        },
        Row {
            label: "TRADES + SPAT (α = 0.1)",
            recipe: recipe(Method::Trades, Some(0.1)),
            values: &["69.24", "43.33"],
        },
        Row {
            label: "MART + SPAT (α = 0.2)",
            recipe: recipe(Method::Mart, Some(0.2)),
            values: &["67.85", "45.19"],
        },
    ],
};

/// Figure 4.1 (§4.1): input gradients of a standard and an adversarially trained model.
pub const FIG_4_1: Figure = Figure {
    id: "fig4.1",
    source: "Figure 4.1, §4.1",
    caption: "(Left) natural image (Middle) gradient w.r.t. x of standard model (Right) gradient w.r.t. x of \
              adversarially trained model.",
    statements: &["§4.1: the gradients of adversarially trained models align well with perceptually relevant \
                   features of the input image while the gradients of standard models seem as mere noises to \
                   humans (after [25])."],
};

/// Figure 5.1 (§5.1): adversarial examples of an adversarially trained model at several radii.
pub const FIG_5_1: Figure = Figure {
    id: "fig5.1",
    source: "Figure 5.1, §5.1",
    caption: "Adversarial examples of adversarially trained model generated on various perturbation limits. \
              All adversarial images are generated by C&W∞ attack. From left to right: original image, \
              ε = 32/255, ε = 16/255, ε = 8/255. From top to bottom: ship to airplane, horse to frog, bird to \
              frog, horse to frog, automobile to ship.",
    statements: &[
        "§5.1: with ε = 32/255 the labels of the images completely change (first row: a ship turns into an airplane).",
        "§5.1: on ε = 16/255 semantics change to some degree and labels often become ambiguous and mixed.",
        "§5.1: on ε = 8/255 labels are preserved but some images show mixed semantics.",
    ],
};

/// Figure 5.2 (§5.1): adversarial examples of an adversarially trained model under several attacks.
pub const FIG_5_2: Figure = Figure {
    id: "fig5.2",
    source: "Figure 5.2, §5.1",
    caption: "Adversarial examples generated on adversarially trained model with various attacks. All adversarial \
              images are generated on ε = 32/255. From left to right: original image, PGD-CE, PGD-LS (α = 0.2), \
              PGD-LS (α = 0.8).",
    statements: &["§5.1: adversarial examples generated by PGD-LS preserve more semantics than those generated by \
                   PGD-CE, and the semantics-preserving effect is greater with larger α."],
};

/// Figure 5.3 (§5.2): robust accuracy against α on a standard and an adversarially trained model.
pub const FIG_5_3: Figure = Figure {
    id: "fig5.3",
    source: "Figure 5.3, §5.2",
    caption: "Robust accuracy under various attacks on a standard model and an adversarially trained model.",
    statements: &[
        "§5.2: α varies from 0 to 1 with stride 0.1 (α = 0 is PGD-CE); PGD-KL is plotted for comparison.",
        "§5.2: bigger α leads to lower attack success rate (higher robust accuracy).",
        "§5.2: for both models, with α = 1.0 the accuracy under attack is higher than the clean accuracy.",
        "§5.2: on the standard model α = 0 differs hugely from the other PGD-LS; on the adversarially trained \
         model PGD-LS changes gradually.",
    ],
};

/// Figure 6.1 (§6.2): clean and robust accuracy over α and training radius on CIFAR-10.
pub const FIG_6_1: Figure = Figure {
    id: "fig6.1",
    source: "Figure 6.1, §6.2",
    caption: "Clean and Robust Accuracy (%) under various α and perturbation limits on CIFAR-10 dataset.",
    statements: &[
        "§6.2: ResNet-50, Madry + SPAT, α from 0 to 1 with stride 0.2 (α = 0 is Madry); training ε = 4/255, 8/255, \
         16/255 with PGD-10 (random start, step ε/4); evaluation at ε = 8/255 with PGD-20 (random start, step ε/10).",
        "§6.2: all models trained by SPAT have higher clean accuracy than Madry; higher α gives higher clean accuracy.",
        "§6.2: with α = 1 training breaks: clean accuracy 32.44% and robust accuracy 0% when ε = 8/255.",
        "§6.2: robust accuracy peaks at α = 0 for ε = 4/255, at α = 0.2 for ε = 8/255 and at α = 0.4 for ε = 16/255.",
        "§6.2: higher clean accuracy is achieved with a smaller ε-ball.",
    ],
};

/// Figure 6.2 (§6.2): the same on CIFAR-100.
pub const FIG_6_2: Figure = Figure {
    id: "fig6.2",
    source: "Figure 6.2, §6.2",
    caption: "Clean and Robust Accuracy (%) under various α and perturbation limits on CIFAR-100 dataset.",
    statements: &["§6.2: same protocol as Figure 6.1 on CIFAR-100; the text discusses only Figure 6.1's values and \
                   states no CIFAR-100 number."],
};

/// §5.2: "for a standard model, PGD-LS with α between 1e-4 and 5e-5 is similar with PGD-KL"
/// (Table 5.1).
pub const TABLE_5_1_KL_LIKE_ALPHAS: &[f64] = &[1e-4, 5e-5];
/// §5.2: "for an adversarially trained model, PGD-LS with α between 0.4 and 0.5 is similar with
/// PGD-KL" (Table 5.2).
pub const TABLE_5_2_KL_LIKE_ALPHAS: &[f64] = &[0.4, 0.5];

/// Figure 6.1's stated peak-α per training ε (in /255), from §6.2.
pub const FIG_6_1_PEAK_ALPHA: &[(f64, f64)] = &[(4.0, 0.0), (8.0, 0.2), (16.0, 0.4)];
/// Figure 6.1's one stated point: α = 1, training ε = 8/255 -> (clean %, robust %).
pub const FIG_6_1_ALPHA_ONE_EPS8: (f64, f64) = (32.44, 0.0);

/// Every table of the thesis that spat reproduces, in the thesis's order.
pub const TABLES: &[Table] = &[
    TABLE_5_1, TABLE_5_2, TABLE_6_1, TABLE_6_2, TABLE_6_3, TABLE_6_4,
];
/// Every figure of the thesis that spat reproduces, in the thesis's order.
pub const FIGURES: &[Figure] = &[FIG_4_1, FIG_5_1, FIG_5_2, FIG_5_3, FIG_6_1, FIG_6_2];

/// The table with id `id` (`table6.1`), if the thesis has one.
pub fn table(id: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.id == id)
}

/// The figure with id `id` (`fig5.3`), if the thesis has one.
pub fn figure(id: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.id == id)
}

/// A paper value as printed, parsed.
pub fn value(printed: &str) -> f64 {
    printed
        .parse()
        .unwrap_or_else(|_| panic!("paper value `{printed}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_one_value_per_column_and_values_are_percentages() {
        for t in TABLES {
            for r in t.rows {
                assert_eq!(r.values.len(), t.columns.len(), "{} / {}", t.id, r.label);
                for v in r.values {
                    assert!((0.0..=100.0).contains(&value(v)), "{} {v}", t.id);
                }
            }
        }
    }
}
