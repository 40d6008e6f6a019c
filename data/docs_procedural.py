"""Procedural documents: the three reasoning procedures written in many formats and sources.

The same procedure shows up as worked Q/A sheets, prose tutorials, Python and JavaScript code, Stack Exchange
answers, arXiv-style markdown with formulas and short multilingual notes, always with different numbers (never
the held-out query problems). The document functions (worked_sheet ... control_reading) take a random.Random and
return (text, kind): kind `procedure:<task>[+<task>...]` names the procedures the text works through
(control_reading too: it states an answer, then works the problem), `drill:<operation>` a list of bare single-step
facts. The text helpers (prose, python_snippet, ...) return text only.
"""
from data.procedures import TASKS, qa, sample_training_problem, steps, expression

OP_WORDS = {"+": ("plus", "add", "adding"), "-": ("minus", "subtract", "subtracting"),
            "*": ("times", "multiply by", "multiplying by")}


DRILL_NAMES = {"*": "multiplication", "+": "addition", "-": "subtraction", "/": "division"}


def procedure_kind(tasks) -> str:
    """The `kind` of a document teaching these tasks' procedures: procedure:<task>[+<task>...] (sorted)."""
    return "procedure:" + "+".join(sorted(set(tasks)))


def _problem(rng, task=None):
    task = task or rng.choice(TASKS)
    return task, sample_training_problem(task, rng)


def prose(task, p, rng):
    """A worked explanation in plain sentences (web / tutorial register)."""
    s = steps(task, p)
    if task == "arithmetic":
        a, op1, b, op2, c = p
        return rng.choice([
            f"To evaluate ({a} {op1} {b}) {op2} {c}, start inside the brackets: {a} {OP_WORDS[op1][0]} {b} is {s[0]}. "
            f"Then {s[0]} {OP_WORDS[op2][0]} {c} is {s[1]}. So ({a} {op1} {b}) {op2} {c} = {s[1]}.",
            f"The brackets come first. {a} {op1} {b} = {s[0]}, and {s[0]} {op2} {c} = {s[1]}, "
            f"so the value of the expression is {s[1]}.",
            f"Work out {a} {op1} {b} first, which gives {s[0]}. Now {OP_WORDS[op2][1]} {c}: {s[0]} {op2} {c} = {s[1]}. "
            f"The result is {s[1]}.",
        ])
    if task == "slope":
        x1, y1, x2, y2 = p
        return rng.choice([
            f"The slope of the line through ({x1}, {y1}) and ({x2}, {y2}) is rise over run. The rise is "
            f"{y2} - {y1} = {s[0]} and the run is {x2} - {x1} = {s[1]}, so the slope is {s[0]} / {s[1]} = {s[2]}.",
            f"Take the points ({x1}, {y1}) and ({x2}, {y2}). The change in y is {y2} - {y1} = {s[0]}. "
            f"The change in x is {x2} - {x1} = {s[1]}. Dividing, {s[0]} / {s[1]} = {s[2]}, so the slope is {s[2]}.",
            f"From ({x1}, {y1}) to ({x2}, {y2}) the line goes up by {s[0]} (since {y2} - {y1} = {s[0]}) while x grows "
            f"by {s[1]} (since {x2} - {x1} = {s[1]}). The slope is {s[0]} / {s[1]} = {s[2]}.",
        ])
    a, b, c = p
    return rng.choice([
        f"To solve {a}x + {b} = {c}, first subtract {b} from both sides to get {a}x = {c} - {b} = {s[0]}. "
        f"Then divide both sides by {a}: x = {s[0]} / {a} = {s[1]}.",
        f"We want x in {a}x + {b} = {c}. Taking {b} away from both sides leaves {a}x = {s[0]}, because "
        f"{c} - {b} = {s[0]}. Dividing by {a} gives x = {s[1]}.",
        f"The equation {a}x + {b} = {c} becomes {a}x = {s[0]} after subtracting {b}, and x = {s[0]} / {a} = {s[1]}. "
        f"Check: {a} * {s[1]} + {b} = {c}.",
    ])


def python_snippet(task, p, rng):
    s = steps(task, p)
    if task == "arithmetic":
        a, op1, b, op2, c = p
        return (f"inner = {a} {op1} {b}  # {s[0]}\nresult = inner {op2} {c}  # {s[0]} {op2} {c} = {s[1]}\n"
                f"print(result)  # {s[1]}")
    if task == "slope":
        x1, y1, x2, y2 = p
        return (f"def slope(p, q):\n    dy = q[1] - p[1]\n    dx = q[0] - p[0]\n    return dy // dx\n\n"
                f"# dy = {y2} - {y1} = {s[0]}, dx = {x2} - {x1} = {s[1]}\n"
                f"print(slope(({x1}, {y1}), ({x2}, {y2})))  # {s[2]}")
    a, b, c = p
    return (f"def solve(a, b, c):\n    \"\"\"Solve a*x + b = c for x.\"\"\"\n    rest = c - b\n    return rest // a\n\n"
            f"# {a}x + {b} = {c}: rest = {c} - {b} = {s[0]}, x = {s[0]} / {a} = {s[1]}\n"
            f"assert solve({a}, {b}, {c}) == {s[1]}")


def js_snippet(task, p, rng):
    s = steps(task, p)
    if task == "arithmetic":
        a, op1, b, op2, c = p
        return (f"const inner = {a} {op1} {b}; // {s[0]}\nconst result = inner {op2} {c}; // {s[1]}\n"
                f"console.log(result); // {s[1]}")
    if task == "slope":
        x1, y1, x2, y2 = p
        return (f"function slope(x1, y1, x2, y2) {{\n  const dy = y2 - y1;\n  const dx = x2 - x1;\n  return dy / dx;\n}}\n"
                f"// dy = {y2} - {y1} = {s[0]}; dx = {x2} - {x1} = {s[1]}\n"
                f"console.log(slope({x1}, {y1}, {x2}, {y2})); // {s[2]}")
    a, b, c = p
    return (f"// solve {a}x + {b} = {c}\nconst rest = {c} - {b}; // {s[0]}\nconst x = rest / {a}; // {s[1]}\n"
            f"console.log(x); // {s[1]}")


def latex(task, p, rng):
    s = steps(task, p)
    if task == "arithmetic":
        a, op1, b, op2, c = p
        o2 = "\\times" if op2 == "*" else op2
        return f"$$({a} {op1} {b}) {o2} {c} = {s[0]} {o2} {c} = {s[1]}$$"
    if task == "slope":
        x1, y1, x2, y2 = p
        return (f"$$m = \\frac{{y_2 - y_1}}{{x_2 - x_1}} = \\frac{{{y2} - {y1}}}{{{x2} - {x1}}} = "
                f"\\frac{{{s[0]}}}{{{s[1]}}} = {s[2]}$$")
    a, b, c = p
    return f"$${a}x + {b} = {c} \\Rightarrow {a}x = {c} - {b} = {s[0]} \\Rightarrow x = \\frac{{{s[0]}}}{{{a}}} = {s[1]}$$"


# ---- whole documents ------------------------------------------------------------------------------------------

def worked_sheet(rng):
    """math_and_trivia: a practice sheet of canonical Q/A problems, usually one task."""
    task = rng.choice(TASKS)
    n = rng.randint(2, 4)
    title = rng.choice(["Practice set", "Worksheet", "Exercises", "Homework", "Drill"])
    problems = [_problem(rng, task if rng.random() < 0.7 else None) for _ in range(n)]
    items = [qa(*problem) for problem in problems]
    text = f"{title} {rng.randint(1, 99)}\n\n" + "\n\n".join(items)
    return text, procedure_kind(task for task, _ in problems)


def fact_drill(rng):
    """math_and_trivia: bare single-step facts (sums, differences, products, quotients) the procedures rely on."""
    kind = rng.choice(["*", "-", "/", "+"])
    lines = []
    for _ in range(rng.randint(6, 10)):
        if kind == "*":
            x, y = rng.randint(1, 9), rng.randint(2, 9)
            lines.append(f"{x} * {y} = {x * y}")
        elif kind == "+":
            x, y = rng.randint(1, 90), rng.randint(1, 9)
            lines.append(f"{x} + {y} = {x + y}")
        elif kind == "-":
            y = rng.randint(1, 9)
            x = rng.randint(y, 70)
            lines.append(f"{x} - {y} = {x - y}")
        else:
            y, q = rng.randint(1, 6), rng.randint(1, 9)
            lines.append(f"{y * q} / {y} = {q}")
    return "\n".join(lines), f"drill:{DRILL_NAMES[kind]}"


def tutorial(rng):
    """web: a short tutorial paragraph with one or two worked examples."""
    task, p = _problem(rng)
    intro = {"arithmetic": "Order of operations says that brackets are evaluated first.",
             "slope": "The slope of a line measures how steep it is: the change in y divided by the change in x.",
             "linear_equation": "A linear equation a x + b = c is solved by undoing the operations in reverse."}[task]
    text = intro + " " + prose(task, p, rng)
    if rng.random() < 0.5:
        text += "\n\nAnother example: " + prose(task, sample_training_problem(task, rng), rng)
    if rng.random() < 0.5:
        text += "\n\n" + qa(task, sample_training_problem(task, rng))
    return text, procedure_kind([task])


def code_doc(rng):
    """code: Python or JavaScript computing one of the procedures, with commented intermediate values."""
    task, p = _problem(rng)
    if rng.random() < 0.55:
        return f"# {task.replace('_', ' ')} example\n" + python_snippet(task, p, rng), procedure_kind([task])
    return f"// {task.replace('_', ' ')} example\n" + js_snippet(task, p, rng), procedure_kind([task])


def stackexchange_doc(rng):
    """stackexchange: a question about one problem and an accepted answer that works it step by step."""
    task, p = _problem(rng)
    e = expression(task, p)
    title = {"arithmetic": f"How do I evaluate {e}?",
             "slope": f"Finding the slope between {e}",
             "linear_equation": f"How to solve {e} for x?"}[task]
    body = rng.choice(["I keep getting the wrong answer.", "Can someone explain the steps?",
                       "My textbook skips the steps.", "Is there a simple method?"])
    answer = prose(task, p, rng)
    if rng.random() < 0.5:
        answer += "\n\nIn short:\n" + qa(task, p).split("\nA: ")[1]
    text = f"Title: {title}\n\nQuestion: {body}\n\nAnswer: {answer}"
    return text, procedure_kind([task])


def arxiv_doc(rng):
    """arxiv: a markdown section stating the method with formulas and a worked example."""
    task, p = _problem(rng)
    head = {"arithmetic": "## Evaluation of bracketed expressions\n\nFor $(a \\circ b) \\star c$ we first compute "
                          "$a \\circ b$ and then apply $\\star c$.",
            "slope": "## Slope of a line\n\nGiven points $(x_1, y_1)$ and $(x_2, y_2)$ the slope is "
                     "$m = (y_2 - y_1)/(x_2 - x_1)$.",
            "linear_equation": "## Linear equations\n\nThe solution of $a x + b = c$ is $x = (c - b)/a$."}[task]
    example = latex(task, p, rng)
    more = latex(task, sample_training_problem(task, rng), rng)
    text = f"{head}\n\n**Example.** {example}\n\n**Example.** {more}"
    return text, procedure_kind([task])


def multilingual_math(rng):
    """multilingual: a short worked example in French, Spanish or German."""
    task, p = _problem(rng, "linear_equation" if rng.random() < 0.3 else "arithmetic")
    s = steps(task, p)
    lang = rng.choice(["fr", "es", "de"])
    if task == "arithmetic":
        a, op1, b, op2, c = p
        texts = {"fr": f"Calculons ({a} {op1} {b}) {op2} {c}. D'abord {a} {op1} {b} = {s[0]}. Ensuite {s[0]} {op2} {c} = {s[1]}.",
                 "es": f"Calculamos ({a} {op1} {b}) {op2} {c}. Primero {a} {op1} {b} = {s[0]}. Luego {s[0]} {op2} {c} = {s[1]}.",
                 "de": f"Wir berechnen ({a} {op1} {b}) {op2} {c}. Zuerst {a} {op1} {b} = {s[0]}. Dann {s[0]} {op2} {c} = {s[1]}."}
        return texts[lang], procedure_kind([task])
    a, b, c = p
    texts = {"fr": f"Résolvons {a}x + {b} = {c}. On soustrait {b}: {a}x = {s[0]}. On divise par {a}: x = {s[1]}.",
             "es": f"Resolvemos {a}x + {b} = {c}. Restamos {b}: {a}x = {s[0]}. Dividimos entre {a}: x = {s[1]}.",
             "de": f"Wir lösen {a}x + {b} = {c}. Minus {b}: {a}x = {s[0]}. Geteilt durch {a}: x = {s[1]}."}
    return texts[lang], procedure_kind([task])


def control_reading(rng):
    """math_and_trivia: 'the answer is given in the text' problems, so copying from the prompt is a known skill."""
    task, p = _problem(rng)
    s = steps(task, p)
    text = f"Note: the answer to \"{qa(task, p).split(chr(10))[0][3:]}\" is {s[-1]}.\n{qa(task, p)}"
    return text, procedure_kind([task])
