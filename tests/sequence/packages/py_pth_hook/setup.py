from setuptools import setup

setup(name="pthhook", version="1", py_modules=["_pthhook"], data_files=[("", ["pthhook.pth"])])
