import subprocess


def test_cli():
    subprocess.run(["trojan-sync", "--help"], check=True)
