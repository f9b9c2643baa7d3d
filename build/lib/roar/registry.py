"""The one registry class: models, datasets, augmentations, estimator bases, controls and fills.

timm's habit: an extension is one decorated function (or object) with the traits it declares, and
every list of names, every error and every config option is derived from the registry.

    FILLS = Registry("fill")

    @FILLS.register("zero", needs_donors=False)
    def zero(images, removed, ...): ...

    FILLS["zero"]            # the entry: .name, .fn, .traits (and traits as attributes)
    FILLS.names()            # sorted names
    FILLS.where(needs_donors=True)
"""

from roar.errors import unknown_name


class Entry:
    """One registered thing: its name, the callable, and its declared traits (also as attributes)."""

    def __init__(self, name: str, fn, traits: dict):
        self.name, self.fn, self.traits = name, fn, dict(traits)

    def __getattr__(self, key):
        try:
            return self.__dict__["traits"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return f"Entry({self.name!r}, {self.traits})"


class Registry:
    """Name -> Entry. ``kind`` names the thing in errors ("Unknown fill 'x'. Valid fill names: ...")."""

    def __init__(self, kind: str, defaults: dict | None = None):
        self.kind, self.defaults, self._entries = kind, dict(defaults or {}), {}

    def register(self, name: str, **traits):
        """Decorator: register ``fn`` under ``name`` with ``traits`` (missing traits take the registry's defaults)."""

        def wrap(fn):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, fn, {**self.defaults, **traits})
            return fn

        return wrap

    def add(self, name: str, fn, **traits) -> None:
        """Register without a decorator (entries made in a loop)."""
        self.register(name, **traits)(fn)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a temporary entry, e.g. in a test)."""
        del self._entries[name]

    def __getitem__(self, name) -> Entry:
        if name not in self._entries:
            raise unknown_name(self.kind, str(name), self._entries)
        return self._entries[name]

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self._entries)

    def names(self) -> list:
        return sorted(self._entries)

    def where(self, **traits) -> list:
        """Names of the entries whose traits equal every given value."""
        return [n for n in self.names() if all(self._entries[n].traits.get(k) == v for k, v in traits.items())]
