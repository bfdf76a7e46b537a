# performance 0.10.2 (Debian r-cran-performance) on lme4 1.1-31: Nakagawa & Schielzeth R2 of models with several
# random terms on tests/data/three_level.csv; tests/test_r2.py holds the printed numbers (conditional, marginal).
# Run from the repository root: Rscript tests/data/r2_factors.R
suppressMessages({library(lme4); library(performance)})
d <- read.csv("tests/data/three_level.csv")
for (f in c("y ~ x + w + (1 | school/class)", "y ~ x + w + (1 + x | school) + (1 | school:class)")) {
  m <- lmer(as.formula(f), data = d)
  cat(f, sprintf("%.12f", unlist(r2_nakagawa(m))), "\n")
}
