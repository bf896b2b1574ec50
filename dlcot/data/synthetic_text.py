"""Phrase tables for `dlcot.data.synthetic`: word-problem scenarios and the synthetic teacher's moves.

Kept apart from the generator so the logic stays readable and so wording can grow without touching offsets.
Two rules shape these tables:
- Every move has several phrasings (real teachers never say the same sentence twice), but the *equations* a
  method writes are produced by the generator, never here, so two approaches of one method share their math
  tokens while different methods (forward steps, one expression, an equation in x) do not.
- No "$" anywhere (math-verify and LaTeX-aware tokenizers read it as a math delimiter), plain ASCII operators.
"""
from __future__ import annotations

from dataclasses import dataclass

Phrase = tuple[str, ...]  # (sentence, label) for plain moves, (sentence, quantity label, combine label) for products


@dataclass(frozen=True)
class Scenario:
    """One story family. Placeholders: {name} {Pro} {pro} {obj} {pos} {Pos} {item} {thing} {n} {count} {per}
    {mul_verb} {mul_inf} {mul_adv}. An empty tuple means the story has no such event (travel has no subtraction)."""

    items: tuple[str, ...]
    start: tuple[str, ...]
    start_product: tuple[Phrase, ...]
    add: tuple[Phrase, ...]
    add_product: tuple[Phrase, ...]
    sub: tuple[Phrase, ...]
    sub_product: tuple[Phrase, ...]
    mul: tuple[Phrase, ...]
    div: tuple[Phrase, ...]
    question: tuple[str, str]  # (question sentence, "how many ..." phrase the teacher restates)
    question_div: tuple[str, str]


SCENARIOS: dict[str, Scenario] = {
    "shopping": Scenario(
        items=("notebooks", "pens", "mugs", "candles", "pairs of socks", "bottles of juice", "loaves of bread"),
        start=("{name} goes to the market with {n} dollars.", "{name} has {n} dollars to spend at the mall."),
        start_product=(("{name} has {count} gift cards worth {per} dollars each.", "the value of the gift cards"),),
        add=(("{Pro} finds {n} dollars in {pos} coat pocket.", "the money after finding the cash"),
             ("A friend pays {obj} back {n} dollars.", "the money after the friend pays back")),
        add_product=(("{Pro} returns {count} {thing} and gets {per} dollars back for each.",
                      "the refund for the {thing}", "the money after the refund"),),
        sub=(("{Pro} pays {n} dollars for parking.", "the money left after parking"),
             ("{Pro} spends {n} dollars on lunch.", "the money left after lunch")),
        sub_product=(("{Pro} buys {count} {thing} at {per} dollars each.",
                      "the cost of the {thing}", "the money left after buying the {thing}"),
                     ("{Pro} picks up {count} {thing} that cost {per} dollars apiece.",
                      "the cost of the {thing}", "the money left after the {thing}")),
        mul=(),
        div=(("{Pro} splits the money that is left equally among {pos} {n} children.", "each child's share"),),
        question=("How many dollars does {name} have left?", "how many dollars {name} has left"),
        question_div=("How many dollars does each child get?", "how many dollars each child gets"),
    ),
    "savings": Scenario(
        items=("dollars",),
        start=("{name} has {n} dollars in a piggy bank.", "{name} has saved {n} dollars so far."),
        start_product=(("{name} saves {per} dollars a week for {count} weeks.", "the amount saved"),),
        add=(("{Pos} aunt gives {obj} {n} dollars for {pos} birthday.", "the savings after the birthday gift"),
             ("{Pro} earns {n} dollars helping at a bake sale.", "the savings after the bake sale")),
        add_product=(("{Pro} walks a neighbor's dog {count} times and earns {per} dollars each time.",
                      "the money from dog walking", "the savings after dog walking"),),
        sub=(("{Pro} spends {n} dollars on a video game.", "the savings after buying the game"),
             ("{Pro} pays {n} dollars for a concert ticket.", "the savings after the concert ticket")),
        sub_product=(("{Pro} buys {count} comic books that cost {per} dollars each.",
                      "the cost of the comic books", "the savings after the comic books"),),
        mul=(("{Pos} parents promise to {mul_inf} whatever {pro} has saved so far, and they do.",
              "the savings after the parents' bonus"),),
        div=(("{Pro} then divides all of it equally into {n} envelopes.", "the amount in each envelope"),),
        question=("How many dollars does {name} have now?", "how many dollars {name} has now"),
        question_div=("How many dollars go into each envelope?", "how many dollars go into each envelope"),
    ),
    "sharing": Scenario(
        items=("marbles", "stickers", "trading cards", "beads", "seashells"),
        start=("{name} has {n} {item}.", "{name} owns a collection of {n} {item}."),
        start_product=(("{name} has {count} bags with {per} {item} in each bag.",
                        "the number of {item} in the bags"),),
        add=(("{Pro} wins {n} more {item} at school.", "the {item} after winning more"),
             ("{Pos} cousin gives {obj} {n} {item}.", "the {item} after the cousin's gift")),
        add_product=(("{Pro} buys {count} packs of {item} with {per} in each pack.",
                      "the {item} in the new packs", "the {item} after buying the packs"),),
        sub=(("{Pro} gives {n} {item} to {pos} younger brother.", "the {item} left after the gift to the brother"),
             ("{Pro} loses {n} {item} on the bus.", "the {item} left after losing some")),
        sub_product=(("{Pro} gives {per} {item} to each of {count} classmates.",
                      "the {item} given to classmates", "the {item} left after giving to classmates"),),
        mul=(("On {pos} birthday, {pos} grandfather {mul_verb} {pos} collection.",
              "the collection after the birthday"),),
        div=(("{Pro} shares all of {pos} {item} equally among {n} friends.", "each friend's share"),),
        question=("How many {item} does {name} have now?", "how many {item} {name} has now"),
        question_div=("How many {item} does each friend get?", "how many {item} each friend gets"),
    ),
    "baking": Scenario(
        items=("cookies", "muffins", "cupcakes", "brownies"),
        start=("{name} has {n} {item} left over from yesterday.",),
        start_product=(("{name} bakes {count} trays of {item} with {per} on each tray.",
                        "the number of {item} baked"),),
        add=(("{Pos} neighbor brings over {n} more {item}.", "the {item} after the neighbor's gift"),
             ("{Pos} grandmother drops off {n} {item}.", "the {item} after the grandmother's visit")),
        add_product=(("{Pro} bakes {count} more batches of {per} {item} each.",
                      "the {item} in the extra batches", "the {item} after the extra batches"),),
        sub=(("{n} of the {item} get burned and are thrown away.", "the {item} left after the burned ones"),
             ("{Pro} eats {n} of the {item} with {pos} family.", "the {item} left after the family snack")),
        sub_product=(("{Pro} gives {per} {item} to each of {count} neighbors.",
                      "the {item} given to neighbors", "the {item} left after the neighbors"),),
        mul=(),
        div=(("{Pro} packs all the {item} into boxes of {n}.", "the number of boxes"),),
        question=("How many {item} does {name} have now?", "how many {item} {name} has now"),
        question_div=("How many boxes does {name} fill?", "how many boxes {name} fills"),
    ),
    "travel": Scenario(
        items=("kilometers",),
        start=("{name} has already cycled {n} kilometers this week.",),
        start_product=(("{name} cycles at {per} kilometers per hour for {count} hours.",
                        "the distance of the first ride"),),
        add=(("{Pro} then rides another {n} kilometers to the lake.", "the distance after the lake ride"),
             ("On Sunday {pro} adds a {n} kilometer ride.", "the distance after the Sunday ride")),
        add_product=(("Later {pro} rides {count} more hours at {per} kilometers per hour.",
                      "the distance of the later ride", "the total distance after the later ride"),),
        sub=(),
        sub_product=(),
        mul=(("{Pro} then repeats everything, so the total becomes {mul_adv} as much.", "the total after repeating"),),
        div=(("{Pro} splits the whole distance evenly over {n} days of training.", "the distance per day"),),
        question=("How many kilometers does {name} cover in total?", "how many kilometers {name} covers in total"),
        question_div=("How many kilometers is that per day?", "how many kilometers {name} rides per day"),
    ),
    "farm": Scenario(
        items=("eggs",),
        start=("{name} has {n} eggs in the fridge.",),
        start_product=(("{name} has {count} hens, and each hen lays {per} eggs this week.",
                        "the eggs laid this week"),),
        add=(("{Pro} buys {n} more eggs at the market.", "the eggs after the market"),
             ("{Pos} uncle brings {obj} {n} eggs.", "the eggs after the uncle's visit")),
        add_product=(("{Pos} neighbor gives {obj} {count} cartons with {per} eggs in each.",
                      "the eggs from the neighbor", "the eggs after the neighbor's cartons"),),
        sub=(("{Pro} uses {n} eggs to bake cakes.", "the eggs left after baking"),
             ("{n} eggs break on the way home.", "the eggs left after some broke")),
        sub_product=(("{Pro} sells {count} cartons of {per} eggs at the market.",
                      "the eggs sold", "the eggs left after selling"),),
        mul=(),
        div=(("{Pro} packs the remaining eggs into cartons of {n}.", "the number of cartons"),),
        question=("How many eggs does {name} have now?", "how many eggs {name} has now"),
        question_div=("How many cartons does {name} fill?", "how many cartons {name} fills"),
    ),
}

NAMES: tuple[tuple[str, str], ...] = (
    ("Maya", "f"), ("Liam", "m"), ("Ava", "f"), ("Noah", "m"), ("Sofia", "f"), ("Ethan", "m"), ("Zara", "f"),
    ("Omar", "m"), ("Priya", "f"), ("Kenji", "m"), ("Lucia", "f"), ("Mateo", "m"), ("Amara", "f"), ("Jonas", "m"),
    ("Chloe", "f"), ("Ravi", "m"), ("Elena", "f"), ("Tariq", "m"), ("Mei", "f"), ("Diego", "m"),
)
PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "him", "his")}  # subject, object, possessive
MUL_WORDS = {2: ("doubles", "double", "twice"), 3: ("triples", "triple", "three times")}

# ---- the teacher's moves -------------------------------------------------------------------------------------
RESTATE = ("Okay, so I need to figure out {target}.", "Alright, so the question is asking {target}.",
           "Okay, let's see. I need to find {target}.", "So I have this word problem, and I need to work out {target}.")
RESTATE_MORE = ("The problem says: {problem}", "Let me read it carefully: {problem}")
RESTATE_END = ("Let me see how to approach this.", "Let me think about this.", "Okay.")
UNDERSTAND = ("First, let me understand what's going on. The amounts to work out are {labels}.",
              "Let me break it down. I need {labels}.",
              "So the pieces here are {labels}.")
PLAN = ("I'll handle them in the order the story gives them and keep track of the running total.",
        "The answer should be a whole number, so if I get a fraction somewhere I've made a mistake.",
        "Nothing tricky, but there are several steps, so I need to be careful with the arithmetic.")
METHOD_INTRO = {
    "forward": ("Let me go through it step by step.", "I'll follow the events in order and compute each amount.",
                "Let me just compute each amount in order."),
    "expression": ("Maybe the cleanest way is to write everything as one expression and evaluate it.",
                   "Let me put the whole story into a single expression.",
                   "I could write it all as one expression and simplify."),
    "equation": ("Let me set up an equation and work backwards from the unknown.",
                 "Another idea: call the unknown x and solve for it by undoing each step."),
}
FORWARD_FIRST = ("First, {label}: {eq}.", "Start with {label}: {eq}.", "To begin, {label} is {eq}.")
FORWARD_MID = ("Then {label}: {eq}.", "Next, {label} is {eq}.", "Now {label}: {eq}.", "After that, {label} is {eq}.")
FORWARD_LAST = ("Finally, {label}: {eq}.", "And last, {label} is {eq}.")
EXPR_SETUP = ("In one expression: {expr}.", "Writing it as a single expression, I get {expr}.",
              "So the whole thing is {expr}.")
EXPR_ROUND = ("Evaluating, {prev} = {cur}.", "That simplifies: {prev} = {cur}.", "Then {prev} = {cur}.")
EQ_QUANTITIES = ("First the separate quantities: {eqs}.", "The quantities involved: {eqs}.")
EQ_SETUP = ("Let x be {target}. Undoing each event in reverse order, x has to satisfy {eq}.",
            "Call {target} x. Going backwards from x to the start gives the equation {eq}.")
EQ_PEEL = ("So {lhs} = {rhs}.", "Then {lhs} = {rhs}.", "That gives {lhs} = {rhs}.")
FILLERS = ("That part is straightforward.", "Okay, so far so good.", "Let me keep track of that.",
           "That seems reasonable.")
ANSWER = ("So the answer would be {ans}.", "That gives {ans} as the answer.", "So I get {ans}.",
          "So the result is {ans}.", "That means the answer is {ans}.")
ABANDON = ("Hmm, this is getting messy. I'm not sure I'm tracking the amounts correctly.",
           "Hmm, I'm losing track of which number is which here.",
           "Actually, I'm not sure this is the best way to organize it.")
SELF_FIX = ("Wait, {eq} is {true}, not {wrong}.", "Wait, that's not right: {eq} is actually {true}, not {wrong}.",
            "Hmm, wait. {eq} = {true}, not {wrong}. Let me fix that.")
AFTER_WRONG = ("Wait, that doesn't seem right.", "Hmm, wait. {wrong} doesn't look right.",
               "Hold on, something is off here.")
AFTER_ABANDON = ("Alternatively, maybe I should try something else.", "Let me try a different approach.",
                 "Maybe there's a cleaner way to do this.")
SWITCH = ("Let me try a different approach.", "Maybe I should try another way.",
          "Alternatively, maybe I should set this up differently.")
RESTART = ("Let me start over and be more careful.", "Let me redo this from the beginning.")
REDUNDANT = ("Alternatively, I could solve it another way to confirm.",
             "Just to be thorough, let me solve it a different way.")
DETECT = ("Let me double-check that. {eq} is {true}, not {wrong}. I made an arithmetic mistake, "
          "so {bad} can't be right.",
          "Hmm, let me verify. Actually {eq} = {true}, not {wrong}, so {bad} is wrong.")
INTERRUPT = ("Let me quickly double-check that: {eq}. Yes, that's right.", "Quick check: {eq}. Okay, good.")
RESUME = ("Okay, continuing.", "Back to it.", "Good, moving on.")
RECHECK = ("Let me double-check the arithmetic.", "Let me verify each calculation.")
RECHECK_OK = ("All of those are right, so the answer is still {ans}.", "Everything checks out: {ans}.")
REDERIVE = ("Let me go through it once more, the same way, to be sure.", "Let me redo the calculation to confirm.")
REDERIVE_OK = ("Same result: {ans}.", "Again {ans}.")
PLUGBACK = ("Let me plug it back in and work backwards from {ans}.",
            "Let me check by undoing each step, starting from {ans}.")
PLUGBACK_OK = ("That's exactly the {start} we started with, so {ans} checks out.",
               "We get back to {start}, which matches the problem. So {ans} is right.")
SANITY = ("Does {ans} make sense? It's a positive whole number, and the size seems reasonable for this problem.",
          "Sanity check: {ans} is a whole number and in a plausible range, so that fits.")
REREAD = ("Let me reread the question to make sure I answered what was asked. It asks {target}, and that's {ans}.",
          "Wait, let me make sure I'm answering the right question. It wants {target}. Yes, that's {ans}.")
CONCLUDE = ("Therefore, the answer is \\boxed{{{ans}}}.", "So, after all that, the answer is \\boxed{{{ans}}}.",
            "I think that's solid. So the answer is \\boxed{{{ans}}}.",
            "Everything is consistent, so the answer is \\boxed{{{ans}}}.")
