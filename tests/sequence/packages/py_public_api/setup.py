from setuptools import setup

setup(
    name="trojan",
    version="1",
    packages=["trojan"],
    entry_points={"console_scripts": ["trojan-sync = trojan.cli:main"]},
)
