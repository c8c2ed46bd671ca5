import subprocess


def test_cli():
    subprocess.run(["mypkg", "--help"], check=True)
