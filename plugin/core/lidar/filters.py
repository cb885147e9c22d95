"""Quality-filter expressions: a tokenizer and recursive-descent parser into a small AST.

Grammar (one or more lines, lines combined with ``and``)::

    expression := disjunction
    disjunction:= conjunction ('or' conjunction)*
    conjunction:= negation ('and' negation)*
    negation   := 'not' negation | '(' expression ')' | comparison
    comparison := [variable] op number          op: == != < <= > >=
                | [variable] ['not'] 'in' '[' number (',' number)* ']'
                | [variable] 'between' number number
    variable   := name | name ':' label          (canopy_h_metrics:95, h_canopy_20m:50)

As in the reference package, the variable may be left out after the first
comparison: ``h_canopy >= 5 and <= 60``. The AST filters the rows a query reads
with numpy (``evaluate``; see ``Atl08Database._raw_batches`` for why not TileDB), and
turns into a TileDB query condition for counts, built from validated attribute names
and numbers only (never from the user's text).

Comparisons with a missing value (NaN) are false, as in TileDB; ``not`` is
applied by negating the comparisons beneath it (De Morgan), so a missing value
never passes a filter either way.

Limits, checked before any recursive or slow work: the text's length, its nesting
(parentheses and ``not``) and its number of comparisons. Each comparison is a pass over
the rows read (256 over 1.9 million rows: 0.16 s), and TileDB builds a count's query
condition at about 2.5 ms per comparison (tiledb-py 0.36: a 1,000-comparison filter
costs 1.3 s before reading a cell, 8,000 cost 25 s); Python's parser, which tiledb-py
uses, refuses conditions nested 200 deep. Same-operator groups are flattened
(``a or (b or (c ...))`` is one ``or``), so what TileDB parses is never deeper than
what the user wrote.
"""

import math
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import FilterSyntaxError, UnknownVariableError
from .products import DEFAULT_PRODUCT, product
from .variables import SCALAR, find_variable, suggest

MAX_FILTER_CHARACTERS = 20_000  # a 256-comparison filter with long names is about 10,000
MAX_COMPARISONS = 256  # after 'in [...]' and 'between' are spelled out; TileDB takes about 0.6 s to build them
MAX_NESTING = 32  # parentheses and 'not's inside one another

NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
KEYWORDS = {"and", "or", "not", "in", "between"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?::\d+)?)
  | (?P<punct>[()\[\],])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int  # 0-based character offset in the line


def tokenize(text: str) -> List[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise FilterSyntaxError(f"unexpected character {text[position]!r} at column {position + 1} in {text!r}")
        kind = match.lastgroup
        if kind != "space":
            value = match.group()
            if kind == "name" and value.lower() in KEYWORDS:
                kind, value = "keyword", value.lower()
            tokens.append(Token(kind, value, position))
        position = match.end()
    return tokens


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Comparison:
    attribute: str
    op: str
    value: float

    def negate(self) -> "Comparison":
        return Comparison(self.attribute, NEGATED[self.op], self.value)


@dataclass(frozen=True)
class Membership:
    attribute: str
    values: Tuple[float, ...]
    negated: bool = False

    def negate(self) -> "Membership":
        return Membership(self.attribute, self.values, not self.negated)


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: Tuple["Filter", ...]

    def negate(self) -> "BoolOp":
        return boolean("or" if self.op == "and" else "and", [item.negate() for item in self.items])


Filter = Union[Comparison, Membership, BoolOp]


def boolean(op: str, items: Sequence[Filter]) -> Filter:
    """``items`` joined with ``op``, a group of the same operator merged in: ``a or (b or c)`` is
    one ``or`` of three, so the condition TileDB parses is no deeper than the user's text."""
    flat: List[Filter] = []
    for item in items:
        if isinstance(item, BoolOp) and item.op == op:
            flat.extend(item.items)
        else:
            flat.append(item)
    return flat[0] if len(flat) == 1 else BoolOp(op, tuple(flat))


def size(node: Optional[Filter]) -> Tuple[int, int]:
    """(comparisons TileDB evaluates, nesting depth) of a filter, counted without recursion."""
    if node is None:
        return 0, 0
    comparisons, deepest = 0, 0
    pending = [(node, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(item, BoolOp):
            pending.extend((child, depth + 1) for child in item.items)
        elif isinstance(item, Membership):
            comparisons += len(item.values)
        else:
            comparisons += 1
    return comparisons, deepest


def check_size(node: Optional[Filter]) -> None:
    """A FilterSyntaxError when a filter (parsed here or built in Python) exceeds the limits."""
    comparisons, depth = size(node)
    if comparisons > MAX_COMPARISONS:
        raise FilterSyntaxError(_too_many(comparisons))
    if depth > MAX_NESTING + 2:  # the lines' 'and' and a spelled-out 'in' add a level each
        raise FilterSyntaxError(f"the quality filters are nested {depth} levels deep; at most {MAX_NESTING} are allowed")


def _too_many(comparisons: int) -> str:
    return (f"the quality filters hold {comparisons:,} comparisons ('in [...]' and 'between' count one per value); at most "
            f"{MAX_COMPARISONS} are allowed (each is a pass over every segment read)")


def check_length(text: str) -> None:
    if len(text) > MAX_FILTER_CHARACTERS:
        raise FilterSyntaxError(f"the quality filters are {len(text):,} characters long; at most {MAX_FILTER_CHARACTERS:,} "
                                f"are allowed (a filter of {MAX_COMPARISONS} comparisons needs about 10,000)")


def attributes(node: Optional[Filter]) -> List[str]:
    """The database attributes a filter reads, in first-use order."""
    if node is None:
        return []
    if isinstance(node, BoolOp):
        seen: List[str] = []
        for item in node.items:
            seen.extend(a for a in attributes(item) if a not in seen)
        return seen
    return [node.attribute]


def _number(value: float) -> str:
    if isinstance(value, (int, np.integer)) or float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def to_condition(node: Filter) -> str:
    """The TileDB query-condition text, generated from the AST (validated names, numbers)."""
    if isinstance(node, Comparison):
        return f"{node.attribute} {node.op} {_number(node.value)}"
    if isinstance(node, Membership):
        # Spelled out as comparisons: tiledb-py 0.36 has no set membership for int16 attributes
        # (segment_landcover), and the expansion is what TileDB evaluates anyway.
        op, joiner = ("!=", " and ") if node.negated else ("==", " or ")
        return "(" + joiner.join(f"{node.attribute} {op} {_number(v)}" for v in node.values) + ")"
    inner = f" {node.op} ".join(to_condition(item) for item in node.items)
    return f"({inner})"


_NUMPY_OPS: Dict[str, Callable] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def evaluate(node: Filter, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Boolean mask of the rows that pass, with TileDB's semantics (NaN fails every comparison)."""
    if isinstance(node, Comparison):
        values = np.asarray(columns[node.attribute])
        result = _NUMPY_OPS[node.op](values, node.value)
        if values.dtype.kind == "f":
            result &= ~np.isnan(values)
        return result
    if isinstance(node, Membership):
        values = np.asarray(columns[node.attribute])
        result = np.isin(values, node.values)
        if node.negated:
            result = ~result
            if values.dtype.kind == "f":
                result &= ~np.isnan(values)
        return result
    masks = [evaluate(item, columns) for item in node.items]
    combine = np.logical_and if node.op == "and" else np.logical_or
    out = masks[0]
    for mask in masks[1:]:
        out = combine(out, mask)
    return out


# --------------------------------------------------------------------------- parser


def resolve_attribute(name: str, product_name: str = DEFAULT_PRODUCT) -> Tuple[str, str]:
    """(TileDB attribute, dtype) for a filter variable of the product: ``h_canopy``,
    ``canopy_h_metrics:95``, or an expanded attribute such as ``canopy_h_metrics_18``."""
    lidar = product(product_name)
    variables = lidar.catalogue()
    if ":" in name:
        base, label = name.split(":", 1)
        variable = find_variable(variables, base, lidar.title)
        attribute, _ = variable.label_column(int(label))
        return attribute, variable.dtype
    if name in variables:
        variable = variables[name]
        if variable.kind != SCALAR:
            raise UnknownVariableError(
                f"'{name}' has {variable.length} values per segment; filter on one of them, "
                f"for example '{name}:{variable.labels[-1] if variable.labels else 1}'"
                if variable.labels
                else f"'{name}' has {variable.length} values per segment; filter on one, e.g. '{name}_1'"
            )
        if variable.name == "beam_id":
            raise UnknownVariableError("beam_id is text; filters compare numbers (use segment_id or rgt instead)")
        return name, variable.dtype
    match = re.fullmatch(r"(.+)_(\d+)", name)
    if match and match.group(1) in variables and variables[match.group(1)].kind != SCALAR:
        variable = variables[match.group(1)]
        if 1 <= int(match.group(2)) <= variable.length:
            return name, variable.dtype
    close = suggest(name, variables)
    hint = f": did you mean '{close}'?" if close else ""
    raise UnknownVariableError(f"unknown variable '{name}' in filter{hint}")


def _shown(text: str) -> str:
    """A filter line as quoted in messages, shortened when long."""
    return repr(text) if len(text) <= 100 else repr(text[:70] + " ... " + text[-20:])


def _prescan(tokens: List[Token], text: str) -> None:
    """Nesting and comparisons counted on the tokens, in one pass, before the recursive parser runs."""
    depth, comparisons = 0, 0
    in_list = False
    for token in tokens:
        if token.kind == "punct":
            if token.text == "(":
                depth += 1
                if depth > MAX_NESTING:
                    raise FilterSyntaxError(f"parentheses are nested more than {MAX_NESTING} deep at column "
                                            f"{token.position + 1} in {_shown(text)}")
            elif token.text == ")":
                depth = max(0, depth - 1)
            elif token.text == "[":
                in_list = True
            elif token.text == "]":
                in_list = False
        elif token.kind == "op" or (token.kind == "number" and in_list):
            comparisons += 1
        elif token.kind == "keyword" and token.text == "between":
            comparisons += 2
    if comparisons > MAX_COMPARISONS:
        raise FilterSyntaxError(_too_many(comparisons))


class _Parser:
    def __init__(self, text: str, default_variable: Optional[str] = None, product_name: str = DEFAULT_PRODUCT):
        check_length(text)
        self.product_name = product_name
        self.text = text
        self.tokens = tokenize(text)
        _prescan(self.tokens, text)
        self.index = 0
        self.depth = 0
        self.current_variable = default_variable

    # helpers
    def peek(self, offset: int = 0) -> Optional[Token]:
        i = self.index + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def error(self, message: str, token: Optional[Token] = None) -> FilterSyntaxError:
        token = token or self.peek()
        where = f"at column {token.position + 1}" if token else "at the end"
        return FilterSyntaxError(f"{message} {where} in {_shown(self.text)}")

    def take(self, kind: str, text: Optional[str] = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            expected = repr(text) if text else kind
            found = repr(token.text) if token else "nothing"
            raise self.error(f"expected {expected} but found {found}", token)
        self.index += 1
        return token

    def at(self, kind: str, text: Optional[str] = None) -> bool:
        token = self.peek()
        return token is not None and token.kind == kind and (text is None or token.text == text)

    # grammar
    def parse(self) -> Filter:
        if not self.tokens:
            raise FilterSyntaxError("empty filter")
        node = self.disjunction()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek().text!r}")
        return node

    def disjunction(self) -> Filter:
        items = [self.conjunction()]
        while self.at("keyword", "or"):
            self.index += 1
            items.append(self.conjunction())
        return boolean("or", items)

    def conjunction(self) -> Filter:
        items = [self.negation()]
        while self.at("keyword", "and"):
            self.index += 1
            items.append(self.negation())
        return boolean("and", items)

    def negation(self) -> Filter:
        nested = self.at("punct", "(") or (self.at("keyword", "not") and not (self.peek(1) and self.peek(1).text == "in"))
        if not nested:
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_NESTING:  # 'not not not ...': each is a level, as parentheses are
            raise self.error(f"parentheses and 'not' are nested more than {MAX_NESTING} deep")
        try:
            self.index += 1
            if self.tokens[self.index - 1].text == "not":
                return self.negation().negate()
            node = self.disjunction()
            self.take("punct", ")")
            return node
        finally:
            self.depth -= 1

    def number(self) -> float:
        token = self.peek()
        if token is None or token.kind != "number":
            raise self.error(f"expected a number but found {token.text!r}" if token else "expected a number", token)
        self.index += 1
        value = float(token.text)
        if not math.isfinite(value):
            raise self.error("numbers must be finite", token)
        return int(value) if re.fullmatch(r"[-+]?\d+", token.text) else value

    def comparison(self) -> Filter:
        token = self.peek()
        if token is not None and token.kind == "name":
            self.index += 1
            self.current_variable = token.text
        elif token is None:
            raise self.error("expected a comparison")
        if self.current_variable is None:
            raise self.error("comparison has no variable (write it before the first operator, e.g. 'h_canopy >= 5')", token)
        try:
            attribute, dtype = resolve_attribute(self.current_variable, self.product_name)
        except UnknownVariableError as error:
            raise UnknownVariableError(f"{error} ({self.text!r})") from None
        token = self.peek()
        if token is None:
            raise self.error(f"expected an operator after '{self.current_variable}'")
        if token.kind == "op":
            self.index += 1
            return Comparison(attribute, token.text, self._typed(self.number(), dtype, token))
        if token.kind == "keyword" and token.text in ("in", "not"):
            negated = token.text == "not"
            self.index += 1
            if negated:
                self.take("keyword", "in")
            self.take("punct", "[")
            values = [self._typed(self.number(), dtype, token)]
            while self.at("punct", ","):
                self.index += 1
                values.append(self._typed(self.number(), dtype, token))
            self.take("punct", "]")
            return Membership(attribute, tuple(values), negated)
        if token.kind == "keyword" and token.text == "between":
            self.index += 1
            low = self._typed(self.number(), dtype, token)
            if self.at("keyword", "and"):  # 'between 5 and 60' reads naturally too
                self.index += 1
            high = self._typed(self.number(), dtype, token)
            if high < low:
                raise self.error(f"'between {low} {high}': the lower bound is above the upper bound", token)
            return BoolOp("and", (Comparison(attribute, ">=", low), Comparison(attribute, "<=", high)))
        raise self.error(f"expected an operator (==, !=, <, <=, >, >=, in, not in, between) but found {token.text!r}", token)

    def _typed(self, value, dtype: str, token: Token):
        if np.dtype(dtype).kind in "iu":
            if isinstance(value, float) and not value.is_integer():
                # An integer attribute compared with a fraction: keep the float, TileDB needs the attribute's type.
                raise self.error(f"{self.current_variable} holds whole numbers; {value} is not one", token)
            info = np.iinfo(np.dtype(dtype))
            if not info.min <= value <= info.max:
                raise self.error(f"{value} is outside the range of {self.current_variable} ({dtype})", token)
            return int(value)
        return float(value)


def parse_filter(text: str, default_variable: Optional[str] = None, product_name: str = DEFAULT_PRODUCT) -> Filter:
    """Parse one filter expression on the variables of ``product_name``."""
    return _Parser(text, default_variable, product_name).parse()


@dataclass(frozen=True)
class FilterLine:
    """One line of the user's filters, kept so an empty result can say which line removed the rest."""

    label: str  # "line 2 'night_flag == 1'", as messages quote it
    node: Filter


def parse_filter_lines(text: Union[str, Sequence[str], None], product_name: str = DEFAULT_PRODUCT) -> Tuple[FilterLine, ...]:
    """FILTERS text parsed line by line (``#`` comments and blank lines skipped)."""
    if text is None:
        return ()
    if isinstance(text, str):
        check_length(text)
        lines = text.splitlines()
    else:
        lines = [str(line) for line in text]
        check_length("\n".join(lines))
    parsed = []
    comparisons = 0
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            node = parse_filter(line, product_name=product_name)
        except FilterSyntaxError as error:
            raise FilterSyntaxError(f"line {number}: {error}") from None
        comparisons += size(node)[0]
        if comparisons > MAX_COMPARISONS:
            raise FilterSyntaxError(_too_many(comparisons))
        parsed.append(FilterLine(f"line {number} {_shown(line)}", node))
    return tuple(parsed)


@dataclass(frozen=True)
class ParsedFilters:
    """FILTERS text and its parse, made once: whoever checks the text (the dialog, as it is typed)
    hands this to the requests it builds, which then take the lines as they are."""

    text: str  # the lines as given, joined with newlines ("" for none): for layer names and metadata
    lines: Tuple[FilterLine, ...]
    product: str = DEFAULT_PRODUCT  # whose variables the lines name

    @classmethod
    def parse(cls, text: Union[str, Sequence[str], None, "ParsedFilters"], product_name: str = DEFAULT_PRODUCT) -> "ParsedFilters":
        """``text`` parsed on the product's variables (a FilterSyntaxError naming the line that is wrong), or
        returned as it is when parsed already for that product."""
        if isinstance(text, ParsedFilters):
            if text.product == product_name:
                return text
            text = text.text
        if text is None:
            return cls("", (), product_name)
        joined = text if isinstance(text, str) else "\n".join(str(line) for line in text)
        return cls(joined, parse_filter_lines(text, product_name), product_name)

    @property
    def node(self) -> Optional[Filter]:
        return combine([line.node for line in self.lines])


def parse_filters(text: Union[str, Sequence[str], None], product_name: str = DEFAULT_PRODUCT) -> Optional[Filter]:
    """Parse FILTERS text: one condition per line (``#`` comments allowed), lines joined with ``and``."""
    return combine([line.node for line in parse_filter_lines(text, product_name)])


def keyword_filter_lines(keywords: Mapping[str, str], product_name: str = DEFAULT_PRODUCT) -> Tuple[FilterLine, ...]:
    """The reference package's keyword form, one line per keyword: ``{"h_canopy": ">= 5 and <= 60"}``."""
    lines = []
    for name, condition in keywords.items():
        check_length(str(condition))
        lines.append(FilterLine(f"{name}={_shown(str(condition))}", parse_filter(str(condition), default_variable=name,
                                                                                      product_name=product_name)))
    check_size(combine([line.node for line in lines]))
    return tuple(lines)


def filters_from_keywords(keywords: Mapping[str, str]) -> Optional[Filter]:
    """The reference package's keyword form: ``{"h_canopy": ">= 5 and <= 60"}``."""
    return combine([line.node for line in keyword_filter_lines(keywords)])


def combine(nodes: Iterable[Optional[Filter]]) -> Optional[Filter]:
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        return None
    return boolean("and", nodes)
