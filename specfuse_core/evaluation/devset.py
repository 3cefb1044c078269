"""The built-in development set: 160 short-answer items in three categories, written for this project.

Why our own set: the quality work needs a fast loop (answers of a few dozen tokens, not GSM8K-length
solutions) and items where a member's habits (echoing the prompt, chatty answers to a yes/no question)
decide the outcome. Every item is generated here, deterministically, so the file
``data/dev.jsonl`` can always be rebuilt (``python -m specfuse_core.evaluation.devset``) and checked
against this code in the tests.

- ``facts`` (60): short factual questions written by hand; correct when an accepted answer appears as
  a word or phrase.
- ``arithmetic`` (50): one- or two-step word problems from templates with a fixed random seed;
  correct when the last number is the result.
- ``instructions`` (50): a format to follow (yes/no only, one word, a list with a given separator, a
  number only, an exact word in capitals); correct only when the whole reply has that form and the
  content is right.

Every checker also fails an answer that copies the prompt (see :func:`copies_prompt`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEV_FILE = Path(__file__).parent / "data" / "dev.jsonl"

FACTS: list[tuple[str, list[str]]] = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("What is the capital of Italy?", ["Rome"]),
    ("What is the capital of Canada?", ["Ottawa"]),
    ("What is the capital of Australia?", ["Canberra"]),
    ("What is the capital of Egypt?", ["Cairo"]),
    ("What is the capital of Spain?", ["Madrid"]),
    ("What is the capital of Germany?", ["Berlin"]),
    ("What is the capital of Russia?", ["Moscow"]),
    ("What is the capital of Kenya?", ["Nairobi"]),
    ("What is the capital of Portugal?", ["Lisbon"]),
    ("What is the capital of Norway?", ["Oslo"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("Which planet is closest to the Sun?", ["Mercury"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("What is the chemical symbol for sodium?", ["Na"]),
    ("What gas do plants absorb from the air for photosynthesis?", ["carbon dioxide", "CO2"]),
    ("What is the boiling point of water at sea level in degrees Celsius?", ["100"]),
    ("How many continents are there on Earth?", ["seven", "7"]),
    ("How many days are there in a leap year?", ["366"]),
    ("How many sides does a hexagon have?", ["six", "6"]),
    ("How many legs does a spider have?", ["eight", "8"]),
    ("Who wrote the play Romeo and Juliet?", ["Shakespeare"]),
    ("Who painted the Mona Lisa?", ["Leonardo", "da Vinci"]),
    ("Who wrote the novel Pride and Prejudice?", ["Jane Austen", "Austen"]),
    ("Who developed the theory of relativity?", ["Einstein"]),
    ("Who was the first person to walk on the Moon?", ["Armstrong"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("What is the longest river in Africa?", ["Nile"]),
    ("What is the tallest mountain in the world?", ["Everest"]),
    ("What is the largest desert in Africa?", ["Sahara"]),
    ("What is the hardest natural substance?", ["diamond"]),
    ("What is the freezing point of water in degrees Fahrenheit?", ["32"]),
    ("What is the main language spoken in Brazil?", ["Portuguese"]),
    ("What currency is used in Japan?", ["yen"]),
    ("What currency is used in the United Kingdom?", ["pound", "sterling"]),
    ("In which country are the pyramids of Giza?", ["Egypt"]),
    ("In which city is the Eiffel Tower?", ["Paris"]),
    ("In which country is the city of Barcelona?", ["Spain"]),
    ("What organ pumps blood through the human body?", ["heart"]),
    ("What is the largest organ of the human body?", ["skin"]),
    ("How many bones are there in the adult human body?", ["206"]),
    ("What is the smallest prime number?", ["2", "two"]),
    ("What is the square root of 81?", ["9", "nine"]),
    ("How many minutes are there in an hour?", ["60", "sixty"]),
    ("How many hours are there in a day?", ["24", "twenty-four"]),
    ("What is the opposite of hot?", ["cold"]),
    ("What color do you get by mixing blue and yellow?", ["green"]),
    ("What animal is known as the King of the Jungle?", ["lion"]),
    ("What is the largest mammal on Earth?", ["blue whale", "whale"]),
    ("What do bees make?", ["honey"]),
    ("What is frozen water called?", ["ice"]),
    ("Which metal is liquid at room temperature?", ["mercury"]),
    ("What is the closest star to Earth?", ["Sun"]),
    ("What is the name of Earth's natural satellite?", ["Moon"]),
    ("Which programming language is named after a snake?", ["Python"]),
    ("What does CPU stand for?", ["central processing unit"]),
    ("What is the past tense of the verb 'go'?", ["went"]),
    ("How many letters are there in the English alphabet?", ["26", "twenty-six"]),
]

NAMES = ["Tom", "Anna", "Ravi", "Mia", "Leo", "Sara", "Omar", "Lina", "Ben", "Yuki"]
THINGS = ["apples", "pencils", "stickers", "marbles", "cookies", "books", "stamps", "shells"]


def _arithmetic(rng: random.Random) -> list[tuple[str, int]]:
    """One- and two-step word problems with small whole numbers (10 of each template)."""
    items: list[tuple[str, int]] = []
    for _ in range(10):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(3, 40), rng.randint(2, 30)
        items.append((f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b))
    for _ in range(10):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a = rng.randint(20, 60)
        b = rng.randint(2, a - 5)
        items.append((f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?", a - b))
    for _ in range(10):
        thing = rng.choice(THINGS)
        boxes, per = rng.randint(2, 9), rng.randint(3, 12)
        items.append((f"There are {boxes} boxes with {per} {thing} in each box. How many {thing} are there in total?", boxes * per))
    for _ in range(10):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        friends, each = rng.randint(2, 8), rng.randint(2, 9)
        items.append((f"{name} shares {friends * each} {thing} equally among {friends} friends. How many {thing} does each friend get?", each))
    for _ in range(10):
        name = rng.choice(NAMES)
        packs, per, eaten = rng.randint(2, 6), rng.randint(4, 10), rng.randint(1, 5)
        items.append(
            (f"{name} buys {packs} packs of cookies with {per} cookies in each pack and eats {eaten} of them. How many cookies are left?", packs * per - eaten)
        )
    return items


@dataclass(frozen=True)
class InstructionContent:
    """The questions behind the five instruction formats; each set (dev, held-out) has its own."""

    yes_no: list[tuple[str, str]]
    one_word: list[tuple[str, list[str]]]
    lists: list[tuple[str, int]]
    numbers: list[tuple[str, int]]
    words: list[str]


DEV_INSTRUCTIONS = InstructionContent(
    yes_no=[
        ("Is the Sun a star?", "yes"), ("Is water wet?", "yes"), ("Can fish breathe underwater?", "yes"),
        ("Is Paris in Germany?", "no"), ("Is 7 an even number?", "no"), ("Do cats lay eggs?", "no"),
        ("Is ice colder than boiling water?", "yes"), ("Is the Moon bigger than the Earth?", "no"),
        ("Does a week have seven days?", "yes"), ("Is a tomato a kind of metal?", "no"),
    ],
    one_word=[
        ("What color is the sky on a clear day?", ["blue"]), ("What is the opposite of up?", ["down"]),
        ("What animal says moo?", ["cow"]), ("What is the capital of England?", ["London"]),
        ("What do you call a baby dog?", ["puppy"]), ("Which season comes after winter?", ["spring"]),
        ("What is the first day of the week after Sunday?", ["Monday"]), ("What color are ripe bananas?", ["yellow"]),
        ("What is the plural of mouse?", ["mice"]), ("Which planet do we live on?", ["Earth"]),
    ],
    lists=[
        ("three primary colors", 3), ("four seasons of the year", 4), ("three fruits", 3),
        ("five animals", 5), ("three countries in Europe", 3), ("four musical instruments", 4),
        ("three vegetables", 3), ("five colors", 5), ("three planets", 3), ("four sports", 4),
    ],
    numbers=[
        ("How many wheels does a bicycle have?", 2), ("How many days are in a week?", 7), ("What is 9 plus 6?", 15),
        ("How many months are in a year?", 12), ("What is 5 times 4?", 20), ("How many legs does a dog have?", 4),
        ("What is 30 minus 12?", 18), ("How many sides does a triangle have?", 3), ("What is 100 divided by 4?", 25),
        ("How many fingers are on one hand?", 5),
    ],
    words=["hello", "ocean", "river", "garden", "window", "planet", "silver", "forest", "candle", "market"],
)


def _instructions(rng: random.Random, content: InstructionContent) -> list[tuple[str, str, Any]]:
    """(prompt, checker, reference) for format-following items."""
    items: list[tuple[str, str, Any]] = []
    for question, answer in content.yes_no:
        items.append((f"{question} Answer with only yes or no.", "yes-no", answer))
    for question, answers in content.one_word:
        items.append((f"{question} Reply with a single word.", "one-word", answers))
    separators = [(";", "semicolons"), (",", "commas"), (" | ", "' | '")]
    for index, (what, count) in enumerate(content.lists):
        sep, sep_name = separators[index % len(separators)]
        items.append(
            (f"List {what}, separated by {sep_name}, on one line and with nothing else.", "separated-list", {"separator": sep.strip(), "count": count})
        )
    for question, answer in content.numbers:
        items.append((f"{question} Reply with the number only, in digits.", "number-only", answer))
    words = list(content.words)
    rng.shuffle(words)
    for word in words:
        items.append((f"Write the word '{word}' in capital letters and nothing else.", "exact", word.upper()))
    return items


def build_items(
    seed: int = 20261129,
    facts: list[tuple[str, list[str]]] = FACTS,
    instructions: InstructionContent = DEV_INSTRUCTIONS,
    id_prefix: str = "",
) -> list[dict[str, Any]]:
    """All items of a set as JSON-ready dicts (id, category, prompt, checker, answer); the defaults
    build the dev set, :mod:`.heldout` passes its own questions, seed and id prefix."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for i, (question, answers) in enumerate(facts):
        items.append({"id": f"{id_prefix}fact-{i:02d}", "category": "facts", "prompt": question, "checker": "answer-any", "answer": answers})
    for i, (question, answer) in enumerate(_arithmetic(rng)):
        items.append({"id": f"{id_prefix}arith-{i:02d}", "category": "arithmetic", "prompt": question, "checker": "number", "answer": answer})
    for i, (prompt, checker, answer) in enumerate(_instructions(rng, instructions)):
        items.append({"id": f"{id_prefix}instr-{i:02d}", "category": "instructions", "prompt": prompt, "checker": checker, "answer": answer})
    return items


def write_items(items: list[dict[str, Any]], path: Path) -> Path:
    """A built-in set's file: one JSON item per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def write_dev_file(path: Path = DEV_FILE) -> Path:
    return write_items(build_items(), path)


if __name__ == "__main__":
    print(write_dev_file())
