# The hand-written packages under packages/ are data for the sequence builder, never tests to run.
collect_ignore_glob = ["packages/*"]
