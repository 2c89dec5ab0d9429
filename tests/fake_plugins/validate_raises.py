"""A plugin whose own dependency is missing: Keras 2 hides the real cause behind
`ValueError: Unable to import backend : validate_raises`."""
import not_an_installed_dependency  # noqa: F401
