import os

CONFIG = os.environ.get("MYPKG_CONFIG", "")
