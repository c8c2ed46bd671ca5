from setuptools import setup

setup(name="classy", version="1", packages=["classy"])
