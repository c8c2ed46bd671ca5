from setuptools import setup

setup(name="pthy", version="1", py_modules=["evilmod"], data_files=[("", ["pthy.pth"])])
