"""Pure Spark transformations, DataFrame -> DataFrame: cleaning, flight state, KPI measures; no I/O."""
