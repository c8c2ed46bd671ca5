from malseq._cli import run

run()
