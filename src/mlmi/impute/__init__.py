"""Imputation: miceforest (single level, with cluster predictors) and the multilevel sampler
(substantive-model compatible, as jomo.lmer), and what each imputation model is."""
