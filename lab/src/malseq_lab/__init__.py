"""malseq-lab: the corpus, evaluation, training and experiment tooling around the malseq scanner.

It imports `malseq` (the scanner); `malseq` never imports it. Installed, it adds `malseq corpus`,
`malseq eval` and `malseq train` to the scanner's command line (entry-point group `malseq.commands`).
"""
