"""The three reasoning tasks: sampling problems, their steps, and the canonical worked solution.

A problem is a small tuple; `steps(task, problem)` gives the intermediate answers (the last one is the answer) and
`question` / `solution` give the canonical Q/A wording the query set uses. The corpus renders the same procedures
in many other formats (see data/corpus_docs.py). Numbers stay small so a ~1M-parameter model can learn them.
"""
import random

TASKS = ("arithmetic", "slope", "linear_equation")


# ---- sampling -------------------------------------------------------------------------------------------------

def sample_arithmetic(rng):
    """(a, op1, b, op2, c) meaning (a op1 b) op2 c; the bracket result is a single digit 1..9."""
    op1 = rng.choice("+-")
    if op1 == "+":
        a = rng.randint(1, 8)
        b = rng.randint(1, 9 - a)
    else:
        a = rng.randint(2, 9)
        b = rng.randint(1, a - 1)
    inner = a + b if op1 == "+" else a - b
    op2 = rng.choice("***+-")
    if op2 == "-":
        c = rng.randint(1, inner) if inner > 1 else 1
    else:
        c = rng.randint(2, 9)
    return (a, op1, b, op2, c)


def sample_slope(rng):
    """(x1, y1, x2, y2) with x2 > x1 and a positive integer slope 1..5."""
    x1 = rng.randint(0, 6)
    dx = rng.randint(1, 3)
    m = rng.randint(1, 5)
    y1 = rng.randint(0, 9)
    return (x1, y1, x1 + dx, y1 + m * dx)


def sample_linear(rng):
    """(a, b, c) meaning a x + b = c with an integer solution x in 1..9."""
    a = rng.randint(2, 6)
    x = rng.randint(1, 9)
    b = rng.randint(1, 9)
    return (a, b, a * x + b)


SAMPLERS = {"arithmetic": sample_arithmetic, "slope": sample_slope, "linear_equation": sample_linear}


# ---- steps ----------------------------------------------------------------------------------------------------

def apply(x, op, y):
    return x + y if op == "+" else x - y if op == "-" else x * y


def steps(task, p):
    """Intermediate answers as ints; the last is the final answer."""
    if task == "arithmetic":
        a, op1, b, op2, c = p
        inner = apply(a, op1, b)
        return [inner, apply(inner, op2, c)]
    if task == "slope":
        x1, y1, x2, y2 = p
        dy, dx = y2 - y1, x2 - x1
        return [dy, dx, dy // dx]
    if task == "linear_equation":
        a, b, c = p
        return [c - b, (c - b) // a]
    raise ValueError(task)


# ---- canonical text (the query format) ------------------------------------------------------------------------

def expression(task, p):
    """The problem as it is written inside a question."""
    if task == "arithmetic":
        a, op1, b, op2, c = p
        return f"({a} {op1} {b}) {op2} {c}"
    if task == "slope":
        x1, y1, x2, y2 = p
        return f"({x1}, {y1}) and ({x2}, {y2})"
    a, b, c = p
    return f"{a}x + {b} = {c}"


def question(task, p):
    e = expression(task, p)
    if task == "arithmetic":
        return f"What is {e}?"
    if task == "slope":
        return f"What is the slope of the line through {e}?"
    return f"Solve for x: {e}."


def solution(task, p):
    """Canonical step-by-step answer; ends with 'The answer is N.'"""
    s = steps(task, p)
    if task == "arithmetic":
        a, op1, b, op2, c = p
        return f"First, {a} {op1} {b} = {s[0]}. Then, {s[0]} {op2} {c} = {s[1]}. The answer is {s[1]}."
    if task == "slope":
        x1, y1, x2, y2 = p
        return (f"The change in y is {y2} - {y1} = {s[0]}. The change in x is {x2} - {x1} = {s[1]}. "
                f"The slope is {s[0]} / {s[1]} = {s[2]}. The answer is {s[2]}.")
    a, b, c = p
    return (f"Subtract {b} from both sides: {a}x = {c} - {b} = {s[0]}. "
            f"Divide both sides by {a}: x = {s[0]} / {a} = {s[1]}. The answer is {s[1]}.")


def qa(task, p):
    return f"Q: {question(task, p)}\nA: {solution(task, p)}"


# ---- held-out query problems ----------------------------------------------------------------------------------

QUERY_SEED = 2024
N_QUERY_PROBLEMS = {"arithmetic": 24, "slope": 24, "linear_equation": 24}


def query_problems():
    """The fixed problems the reasoning queries ask; the corpus never contains these exact problems."""
    rng = random.Random(QUERY_SEED)
    out = {}
    for task in TASKS:
        seen = []
        while len(seen) < N_QUERY_PROBLEMS[task]:
            p = SAMPLERS[task](rng)
            if p not in seen:
                seen.append(p)
        out[task] = seen
    return out


HELD_OUT = {t: set(ps) for t, ps in query_problems().items()}


def sample_training_problem(task, rng):
    """A problem for the corpus: any problem except the held-out query problems."""
    while True:
        p = SAMPLERS[task](rng)
        if p not in HELD_OUT[task]:
            return p
