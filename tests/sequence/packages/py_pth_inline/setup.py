from setuptools import setup

setup(name="pthinline", version="1", py_modules=["pthinline"], data_files=[("", ["pthinline.pth"])])
