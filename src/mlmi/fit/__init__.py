"""The fit, as lme4's: formulas and designs, the profiled deviance (one factor or several), lmer and glmer
fits, variance-component intervals and R², and what a fit record says."""
