"""The built-in PyTorch trainer (`builtin:classifier`). Import submodules directly."""
