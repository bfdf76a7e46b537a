"""mlmi: multilevel models fitted on multiply imputed data, pooled with Rubin's rules."""
