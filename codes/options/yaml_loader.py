"""YAML of option files, read strictly: a key set twice in one mapping is an error naming both lines (YAML
would keep the last value silently), and aliases may not expand a file to more than :data:`MAX_VALUES`
values (a few lines of ``&a``/``*a`` can otherwise stand for billions).

A merge key (``<<: *base``) may still be overridden by the mapping's own keys: that is its purpose.
"""
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from utils.errors import KULNetError, short

MAX_VALUES = 100_000  # far above any option file; a longer list belongs in a kernel_file
MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that checks each mapping for repeated keys and each document for its expanded size."""

    def __init__(self, stream):
        super().__init__(stream)
        self.path = []  # the keys (and list indices) leading to the node being composed

    def compose_node(self, parent, index):
        step = index.value if isinstance(index, ScalarNode) else f"[{index}]" if isinstance(index, int) else None
        self.path.append(step)
        try:
            return super().compose_node(parent, index)
        finally:
            self.path.pop()

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
                continue
            first = seen.setdefault((key.tag, key.value), key)
            if first is not key:
                where = ".".join(str(p) for p in self.path + [key.value] if p is not None).replace(".[", "[")
                raise _Duplicate(where, first.start_mark.line + 1, key.start_mark.line + 1)
        return node

    def compose_document(self):
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}, set()) > MAX_VALUES:
            raise _TooLarge()
        return node


class _Duplicate(Exception):
    def __init__(self, key, first, second):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _TooLarge(Exception):
    pass


def _expanded_size(node, sizes, open_nodes):
    """Number of values ``node`` stands for with every alias written out (memoised per node)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:  # an alias inside its own anchor: endless when written out
        raise _TooLarge()
    open_nodes.add(id(node))
    total = 1
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_VALUES:
            break
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def load_yaml(stream, src):
    """``yaml.safe_load`` of ``stream`` (text or a file), strictly (see the module docstring).

    Raises:
        KULNetError: a key set twice (naming the key and both lines) or an over-large alias expansion;
            YAML errors themselves propagate as ``yaml.YAMLError`` for the caller to report.
    """
    loader = _StrictLoader(stream)
    try:
        return loader.get_single_data()
    except _Duplicate as dup:
        raise KULNetError(f"{src}: {short(dup.key)} is set twice (line {dup.first} and line {dup.second}); "
                          f"keep one of them") from None
    except _TooLarge:
        raise KULNetError(f"{src}: its aliases (&name / *name) stand for more than {MAX_VALUES} values; write the "
                          f"values out, or give long lists as a file (e.g. kernel_file)") from None
    finally:
        loader.dispose()
