"""The data: the simulator with its known truth, amputation by a missingness mechanism, what Amelia's
summary shows of the missing values, and which columns live at which level."""
