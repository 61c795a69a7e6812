"""The experiment definition: validation messages, survey answers, flow groups, plans, policies."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.games.cooking import Cooking
from game.games.pong import Pong
from game.spaces import Discrete
from scenes import (
    AnswerError, Bot, Choice, ClientContext, Conditions, Consent, End, Experiment, ExperimentError, FreeText,
    IdlePolicy, Likert, Match, Outcome, Page, RandomOrder, RandomPolicy, Repeat, Survey, WaitingRoom, choose_arm,
    markdown_to_html, resolve_policy,
)

END = End("end")


def page(id: str) -> Page:
    return Page(id, id.title(), markdown=f"Page {id}.")


def pong_match(id: str = "pong", **kwargs) -> Match:
    settings = {"humans": ["left"], "ai": {"right": "random"}, **kwargs}
    return Match(id, Pong, **settings)


def error_of(experiment: Experiment, resolve=None) -> str:
    with pytest.raises(ExperimentError) as info:
        experiment.validate(resolve)
    return str(info.value)


def scene_error(scene, resolve=None) -> str:
    """The message for `scene` placed first in a minimal experiment."""
    return error_of(Experiment("study", [scene, End("end")]), resolve)


# -- validation messages ----------------------------------------------------------------------------------------


def test_a_valid_experiment_passes_and_its_descriptors_are_json():
    experiment = Experiment("study-1", [
        Consent("consent", markdown="I agree."),
        page("intro"),
        pong_match(keys={"ArrowUp": 1, "ArrowDown": 2}, netcode={"input_delay": 2, "max_prediction": 6}),
        Survey("feedback", "Feedback", questions=[Likert("fun", "Fun?", labels=("no", "yes"))]),
        End("end", completion_code="C0DE"),
    ])
    experiment.validate()
    for scene in experiment.plan(1, lambda c: "")[:-1]:
        json.dumps(scene.to_client(ClientContext()))


def test_the_message_names_the_scene_position_kind_and_id():
    experiment = Experiment("study", [
        page("a"), page("b"),
        Survey("feedback", "F", questions=[Likert("q1", "Fun?"), Likert("q2", "Hard?", scale=1)]),
        END,
    ])
    assert error_of(experiment) == (
        "scene 3 (survey 'feedback'): question 'q2' has scale 1; a Likert scale needs 2 to 11 points")


@pytest.mark.parametrize(("scene", "message"), [
    (Page("p", "P"), "scene 1 (page 'p'): give its text as html= or markdown="),
    (Page("p", "P", html="<p>x</p>", markdown="x"), "scene 1 (page 'p'): give html= or markdown=, not both"),
    (Page("my page", "P", markdown="x"), "scene 1 (page 'my page'): id 'my page' is not a valid id; use 1 to 64 "
     "letters, digits, '_', '-' or '.', starting with a letter or digit"),
    (Page("p#2", "P", markdown="x"), "scene 1 (page 'p#2'): id 'p#2' is not a valid id; use 1 to 64 "
     "letters, digits, '_', '-' or '.', starting with a letter or digit"),
    (Consent("c"), "scene 1 (consent 'c'): give its text as html= or markdown="),
    (Survey("s", questions=[]),
     "scene 1 (survey 's'): questions must be a non-empty list of Likert, Choice or FreeText"),
    (Survey("s", questions=["q"]), "scene 1 (survey 's'): question 1 is a str; expected Likert, Choice or FreeText"),
    (Survey("s", questions=[FreeText("q", "A"), FreeText("q", "B")]),
     "scene 1 (survey 's'): two questions have the id 'q'"),
    (Survey("s", questions=[Choice("c", "C", options=["a", "a"])]),
     "scene 1 (survey 's'): question 'c' lists option 'a' twice"),
    (Survey("s", questions=[Choice("c", "C", options=["a"])]),
     "scene 1 (survey 's'): question 'c': options must be a list of at least 2 non-empty strings, got ['a']"),
    (Survey("s", questions=[FreeText("t", "T", max_length=0)]),
     "scene 1 (survey 's'): question 't' has max_length 0; use 1 to 20000 characters"),
    (Survey("s", questions=[Likert("l", "L", labels=("low",))]),
     "scene 1 (survey 's'): question 'l': labels must be two strings (low end, high end), got ('low',)"),
    (Survey("s", questions=[Likert("l", "")]), "scene 1 (survey 's'): question 'l': text must not be empty"),
])
def test_scene_messages(scene, message):
    assert scene_error(scene) == message


@pytest.mark.parametrize(("match", "message"), [
    (Match("m", Pong, humans=["left"]),
     "humans + ai must be exactly the players of Pong ['left', 'right']: no seat for ['right'] (add to humans or ai)"),
    (pong_match(ai={"right": "random", "middle": "idle"}),
     "humans + ai must be exactly the players of Pong ['left', 'right']: unknown players ['middle']"),
    (Match("m", Pong, humans=["left"], ai={"left": "idle"}), "player 'left' is in both humans and ai"),
    (Match("m", Pong, humans=[]), "humans must be a non-empty list of player ids, got []"),
    (pong_match(keys={"w": 5}), "keys['w'] = 5 is not an action of 'left': 5 is outside [0, 2]"),
    (pong_match(netcode={"max_prediction": 100}), "netcode: max_prediction must be an int in [0, 64], got 100"),
    (pong_match(netcode={"rollback": 1}), "netcode: unknown setting 'rollback'; known: input_delay, max_prediction, "
     "desync_interval, disconnect_notify_ms, disconnect_timeout_ms, keepalive_ms"),
    (pong_match(netcode={"disconnect_notify_ms": 5000}),
     "netcode: need 0 < disconnect_notify_ms <= disconnect_timeout_ms"),
    (pong_match(netcode={"keepalive_ms": "100"}), "netcode: keepalive_ms must be a number, got '100'"),
    (pong_match(netcode={"input_delay": {"top": 2}}), "netcode: input_delay names unknown players ['top']"),
    (pong_match(ai={"right": RandomPolicy()}),
     "ai['right']: pass the policy class RandomPolicy, not an instance (each match builds a fresh one)"),
    (pong_match(ai={"right": "smart"}),
     "ai['right']: 'smart' is not a policy; use 'random', 'idle', a class with act(observation), 'FILE.py:Class' or "
     "'onnx:FILE.onnx'"),
    (pong_match(fill_policy=object), "fill_policy: policy class object has no act(observation) method"),
    (pong_match(config={"width": -1}),
     "game Pong refused its config: ValueError: Pong config 'width' must be >= 1, got -1"),
    (pong_match(config={"speed": float("nan")}), "config['speed']: nan is not a finite number (JSON in browsers has no "
     "NaN or Infinity); use only None, bool, int, float, str, lists and str-keyed dicts"),
    (pong_match(episodes=0), "episodes must be an int from 1 to 1000, got 0"),
    (pong_match(fps=500), "fps must be an int from 1 to 240, got 500"),
    (pong_match(on_partner_drop="wait"), "on_partner_drop must be 'ai' or 'end', got 'wait'"),
    (pong_match(on_interrupted="restart"), "on_interrupted must be 'continue' or 'rerun', got 'restart'"),
    (pong_match(waiting_room=WaitingRoom(on_timeout="stay")),
     "waiting_room on_timeout must be 'ai' or 'leave', got 'stay'"),
    (pong_match(waiting_room=WaitingRoom(timeout_s=0)), "waiting_room timeout_s must be 1 to 3600 seconds, got 0"),
    (Match("m", "pong", humans=["left"]), "game 'pong' must be 'FILE.py:Class', 'package.module:Class' or a class"),
])
def test_match_messages(match, message):
    assert scene_error(match) == f"scene 1 (match {match.id!r}): {message}"


def test_string_game_specs_are_checked_against_the_game_when_resolvable():
    match = Match("m", "games/pong.py:Pong", humans=["left", "right"], keys={"w": 9})
    Experiment("study", [match, End("end")]).validate()  # without resolve: no game checks
    assert match.players == ("left", "right")
    assert scene_error(match, resolve={"games/pong.py:Pong": Pong}.__getitem__) == (
        "scene 1 (match 'm'): keys['w'] = 9 is not an action of 'left': 9 is outside [0, 2]")
    assert match.game_class is Pong

    def missing(spec):
        raise FileNotFoundError(f"no such file: {spec}")

    broken = Match("m", "nope.py:Pong", humans=["left", "right"])
    assert scene_error(broken, missing) == (
        "scene 1 (match 'm'): game 'nope.py:Pong' could not be loaded: no such file: nope.py:Pong")
    with_policy = pong_match(ai={"right": "bots.py:Smart"})
    assert scene_error(with_policy, missing) == (
        "scene 1 (match 'pong'): ai['right']: policy 'bots.py:Smart' could not be loaded: no such file: bots.py:Smart")


@pytest.mark.parametrize(("experiment", "message"), [
    (Experiment("my study", [END]), "experiment id 'my study' is not a valid id; use 1 to 64 letters, digits, '_', "
     "'-' or '.', starting with a letter or digit"),
    (Experiment("s", []), "scenes must be a non-empty list ending with an End scene"),
    (Experiment("s", [END, page("p")]), "the last scene must be an End (the page shown on completion), not page 'p'"),
    (Experiment("s", [End("early"), END]),
     "scene 1 (end 'early'): an End scene may only be the last scene of the experiment"),
    (Experiment("s", [page("p"), Page("p", "Again", markdown="x"), END]),
     "scene 2 (page 'p'): the id 'p' is already used by scene 1 (page 'p'); scene ids must be unique"),
    (Experiment("s", ["intro", END]), "scene 1: expected a scene (Consent, Page, Survey, Match, End), a group "
     "(RandomOrder, Repeat, Conditions) or a list of them, got str 'intro'"),
    (Experiment("s", [RandomOrder([[page("a"), []]]), END]),
     "scene 1 (random order) > scene 1 (block) > scene 2 (block): a block (a list of scenes) must not be empty"),
    (Experiment("s", [Repeat(page("p"), times=0), END]), "scene 1 (repeat): times must be an int from 1 to 100, got 0"),
    (Experiment("s", [RandomOrder([]), END]), "scene 1 (random order): a RandomOrder needs a non-empty list of scenes"),
    (Experiment("s", [RandomOrder([page("a"), Repeat(Survey("s", questions=[Likert("q", "Q", scale=12)]), times=2)]),
                      END]),
     "scene 1 (random order) > scene 2 (repeat) > survey 's': question 'q' has scale 12; "
     "a Likert scale needs 2 to 11 points"),
    (Experiment("s", [Conditions(name="c", arms={"a": [page("a")], "b": [Page("b", "B")]}), END]),
     "scene 1 (conditions 'c') > arm 'b' > scene 1 (page 'b'): give its text as html= or markdown="),
    (Experiment("s", [Conditions(name="c", arms={}), END]),
     "scene 1 (conditions 'c'): arms must be a non-empty dict {arm name: [scenes]}"),
    (Experiment("s", [Conditions(name="c", arms={"a": page("a")}), Conditions(name="c", arms={"b": page("b")}), END]),
     "scene 2 (conditions 'c'): the name 'c' is already used by scene 1 (conditions 'c'); "
     "give each Conditions its own name"),
    (Experiment("s", [End("end", redirect="ftp://x")]),
     "scene 1 (end 'end'): redirect 'ftp://x' must start with https:// or http://"),
    (Experiment("s", [End("end", redirect="https://x/?a={PROLIFIC PID}")]), "scene 1 (end 'end'): redirect "
     "'https://x/?a={PROLIFIC PID}' has a stray brace; placeholders look like {participant} or {PROLIFIC_PID}"),
    (Experiment("s", [END], outcomes={"completed": Outcome()}),
     "outcomes['completed']: the completed outcome is the last "
     "scene (end 'end'); set its completion_code and redirect there"),
    (Experiment("s", [END], outcomes={"timeout": Outcome()}), "outcomes: unknown outcome 'timeout'; known outcomes: "
     "declined, waiting_timeout, partner_dropped, excluded, timed_out, error"),
    (Experiment("s", [END], outcomes={"excluded": Outcome(completion_code="a b")}),
     "outcome 'excluded': completion_code 'a b' must not contain spaces or control characters"),
])
def test_experiment_messages(experiment, message):
    assert error_of(experiment) == message


def test_a_scene_may_reappear_only_in_other_arms_of_a_conditions():
    shared = page("shared")
    Experiment("s", [Conditions(name="c", arms={"a": [shared, page("a")], "b": [page("b"), shared]}), END]).validate()
    assert error_of(Experiment("s", [shared, shared, END])) == (
        "scene 2 (page 'shared'): this scene already appears at scene 1 (page 'shared'); "
        "use Repeat(...) to show a scene more than once")
    assert error_of(Experiment("s", [Conditions(name="c", arms={"a": shared, "b": page("b")}), shared, END])) == (
        "scene 2 (page 'shared'): this scene already appears at scene 1 (conditions 'c') > arm 'a' > "
        "scene 1 (page 'shared'); use Repeat(...) to show a scene more than once")


# -- advancing and survey answers --------------------------------------------------------------------------------

SURVEY = Survey("feedback", "Feedback", questions=[
    Likert("fun", "It was fun.", scale=5),
    Choice("hand", "Which hand?", options=["left", "right"]),
    Choice("devices", "Devices?", options=["mouse", "keyboard", "pad"], multiple=True, required=False),
    FreeText("comment", "Anything else?", max_length=10),
])


def test_valid_answers_are_cleaned_with_one_entry_per_question():
    SURVEY.check()
    answers = {"fun": 5, "hand": "left", "devices": ["pad", "mouse"], "comment": "  nice  "}
    assert SURVEY.validate(answers) == {"fun": 5, "hand": "left", "devices": ["mouse", "pad"], "comment": "nice"}
    assert SURVEY.validate({"fun": 1, "hand": "right", "comment": ""}) == {
        "fun": 1, "hand": "right", "devices": None, "comment": None}
    assert SURVEY.parse_advance({"answers": {"fun": 2, "hand": "left"}})["answers"]["fun"] == 2


def test_bad_answers_get_one_message_per_question():
    with pytest.raises(AnswerError) as info:
        SURVEY.validate({"fun": 6, "devices": ["mouse", "mouse"], "comment": "x" * 11, "extra": 1})
    assert info.value.errors == {
        "extra": "is not a question of this survey",
        "fun": "expected a whole number from 1 to 5, got 6",
        "hand": "an answer is required",
        "devices": "lists an option twice",
        "comment": "is 11 characters long; the limit is 10",
    }
    assert str(info.value).startswith("question 'extra': is not a question of this survey; question 'fun': ")
    with pytest.raises(AnswerError, match=r"expected a whole number from 1 to 5, got bool"):
        SURVEY.validate({"fun": True, "hand": "left"})
    with pytest.raises(AnswerError, match=r"^answers must be an object of \{question id: answer\}, got list$"):
        SURVEY.validate([1, 2])
    with pytest.raises(AnswerError, match="the text contains invalid characters"):
        SURVEY.validate({"fun": 1, "hand": "left", "comment": "\ud800"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
answer_dicts = st.dictionaries(st.sampled_from(["fun", "hand", "devices", "comment", "other"]) | st.text(max_size=6),
                               json_values | st.sampled_from(["left", "mouse", 3, ["pad"]]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, answer_dicts))
def test_arbitrary_json_answers_raise_nothing_but_answer_error(answers):
    try:
        cleaned = SURVEY.validate(answers)
    except AnswerError as exc:
        assert exc.errors and str(exc)
        return
    assert set(cleaned) == {"fun", "hand", "devices", "comment"}
    json.dumps(cleaned)


def test_parse_advance_per_scene_kind():
    consent = Consent("c", markdown="ok")
    assert consent.parse_advance({"accept": True}) == {"accept": True}
    assert consent.parse_advance({"accept": False}) == {"accept": False}
    with pytest.raises(AnswerError, match='consent needs {"accept": true} or {"accept": false}'):
        consent.parse_advance({"accept": "yes"})
    assert page("p").parse_advance({}) == {}
    with pytest.raises(AnswerError, match="advance data must be an object, got str"):
        page("p").parse_advance("next")
    with pytest.raises(AnswerError, match="cannot be advanced"):
        pong_match().parse_advance({})
    with pytest.raises(AnswerError, match="nothing to advance to"):
        END.parse_advance({})


# -- flow: RandomOrder, Repeat, Conditions -----------------------------------------------------------------------


def ids(scenes) -> list[str]:
    return [scene.id for scene in scenes]


def test_random_order_shuffles_blocks_as_units():
    experiment = Experiment("s", [RandomOrder([[page("a1"), page("a2")], [page("b1"), page("b2")]]), END])
    plans = {tuple(ids(experiment.plan(seed, lambda c: ""))) for seed in range(20)}
    assert plans == {("a1", "a2", "b1", "b2", "end"), ("b1", "b2", "a1", "a2", "end")}


def test_random_order_is_reproducible_per_seed_and_varies_across_seeds():
    experiment = Experiment("s", [page("intro"), RandomOrder([page(x) for x in "abcde"]), END])
    assert ids(experiment.plan(7, lambda c: "")) == ids(experiment.plan(7, lambda c: ""))
    orders = {tuple(ids(experiment.plan(seed, lambda c: ""))) for seed in range(40)}
    assert len(orders) > 20
    assert all(order[0] == "intro" and order[-1] == "end" and sorted(order[1:6]) == list("abcde") for order in orders)
    firsts = Counter(order[1] for order in orders)
    assert set(firsts) == set("abcde")


def test_repeat_gives_each_visit_its_own_id():
    survey = Survey("rating", questions=[Likert("q", "Q")])
    experiment = Experiment("s", [
        Repeat([pong_match(), survey], times=2),
        Repeat(RandomOrder([page("a"), Repeat(page("b"), times=2)]), times=2),
        END,
    ])
    plan = experiment.plan(3, lambda c: "")
    assert ids(plan)[:4] == ["pong", "rating", "pong#2", "rating#2"]
    assert sorted(ids(plan)[4:]) == ["a", "a#2", "b", "b#2", "b#3", "b#4", "end"]
    second = plan[2]
    assert (second.base_id, second.visit, second.to_client()["id"]) == ("pong", 2, "pong#2")
    assert plan[0].id == "pong" and plan[0].visit == 1  # the original is untouched
    assert experiment.scene_by_id("b#4").id == "b#4"


def test_choose_arm_balances_and_breaks_ties_by_order():
    assert choose_arm(["a", "b", "c"], {}) == "a"
    assert choose_arm(["a", "b", "c"], {"a": 1}) == "b"
    assert choose_arm(["a", "b", "c"], {"a": 2, "b": 1, "c": 1}) == "b"
    counts: Counter[str] = Counter()
    for _ in range(31):
        counts[choose_arm(["x", "y", "z"], counts)] += 1
    assert counts == {"x": 11, "y": 10, "z": 10}
    with pytest.raises(ValueError):
        choose_arm([], {})


def test_plan_of_a_nested_experiment():
    shared_survey = Survey("post", questions=[FreeText("t", "Thoughts?")])
    difficulty = Conditions(name="difficulty", arms={
        "easy": [pong_match("easy-pong", config={"ball_speed": 4}), shared_survey],
        "hard": [
            RandomOrder([pong_match("hard-pong"), Match("cook", Cooking, humans=["chef_1"], ai={"chef_2": "idle"})]),
            shared_survey,
        ],
    })
    experiment = Experiment("nested", [
        Consent("consent", html="<p>ok</p>"),
        Repeat(RandomOrder([page("p1"), page("p2")]), times=2),
        difficulty,
        End("end"),
    ])
    experiment.validate()
    assigned: list[str] = []

    def arm_for(conditions: Conditions) -> str:
        assigned.append(conditions.name)
        return "hard"

    plan = experiment.plan(11, arm_for)
    assert assigned == ["difficulty"]
    names = ids(plan)
    assert names[0] == "consent" and names[-2:] == ["post", "end"]
    assert sorted(names[1:5]) == ["p1", "p1#2", "p2", "p2#2"]
    assert sorted(names[5:7]) == ["cook", "hard-pong"]
    assert ids(experiment.plan(11, lambda c: "easy")) == [*names[:5], "easy-pong", "post", "end"]
    assert ids(experiment.match_scenes()) == ["easy-pong", "hard-pong", "cook"]
    assert experiment.conditions() == [difficulty]
    assert experiment.scene_by_id("post") is shared_survey
    with pytest.raises(KeyError):
        experiment.scene_by_id("nope")
    with pytest.raises(ValueError, match="arm_for returned 'medium'"):
        experiment.plan(1, lambda c: "medium")


# -- End pages, outcomes and markdown ----------------------------------------------------------------------------


def test_end_redirect_placeholders_are_url_encoded():
    end = End("end", completion_code="C0DE",
              redirect="https://x.org/done?cc={completion_code}&pid={PROLIFIC_PID}&p={participant}&s={STUDY_ID}")
    context = ClientContext(participant="p 1/2", params={"PROLIFIC_PID": "a&b=c?d#e", "participant": "ignored"})
    descriptor = end.to_client(context)
    assert descriptor["redirect"] == "https://x.org/done?cc=C0DE&pid=a%26b%3Dc%3Fd%23e&p=p%201%2F2&s="
    assert descriptor | {"redirect": None} == {
        "kind": "end", "id": "end", "title": "Thank you", "html": "<p>Thank you for taking part.</p>",
        "outcome": "completed", "completion_code": "C0DE", "redirect": None}


def test_outcome_pages_have_defaults_and_their_own_ids():
    experiment = Experiment("s", [END], outcomes={
        "waiting_timeout": Outcome(completion_code="WAIT", redirect="https://x.org/?cc={completion_code}")})
    experiment.validate()
    timeout = experiment.end_scene("waiting_timeout").to_client(ClientContext())
    assert timeout["id"] == "end:waiting_timeout" and timeout["outcome"] == "waiting_timeout"
    assert timeout["title"] == "No partner found" and timeout["redirect"] == "https://x.org/?cc=WAIT"
    error = experiment.scene_by_id("end:error").to_client()
    assert (error["outcome"], error["completion_code"], error["redirect"]) == ("error", None, None)
    assert experiment.end_scene("completed") is END
    assert experiment.outcome("declined").completion_code is None


def test_markdown_converts_the_basics_and_escapes_html():
    text = ("# Title <b>\n\nSome *em*, **strong** and `<code>`, a snake_case_name.\n\n"
            "- one\n- two\n\n1. first\n2. second")
    assert markdown_to_html(text) == (
        "<h1>Title &lt;b&gt;</h1>\n"
        "<p>Some <em>em</em>, <strong>strong</strong> and <code>&lt;code&gt;</code>, a snake_case_name.</p>\n"
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"        # CommonMark puts each list item on its own line
        "<ol>\n<li>first</li>\n<li>second</li>\n</ol>")
    assert markdown_to_html("<script>alert(1)</script>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    # CommonMark keeps a refused link as its literal text, and percent-encodes a quote in a URL
    links = markdown_to_html("[site](https://x.org/?a=1&b=2) [bad](javascript:alert) [x](a\"b)")
    assert links == '<p><a href="https://x.org/?a=1&amp;b=2">site</a> [bad](javascript:alert) <a href="a%22b">x</a></p>'
    assert "href=\"javascript" not in links
    assert Page("p", "P", markdown="<img src=x onerror=alert(1)>").to_client()["html"] == (
        "<p>&lt;img src=x onerror=alert(1)&gt;</p>")


def test_markdown_links_and_images_keep_only_web_mail_and_relative_urls():
    html = markdown_to_html("[m](mailto:a@b.c) [r](/a) [h](#top) [f](ftp://x) [d](data:text/html,x) "
                            "[j](JaVaScRiPt:x) ![i](javascript:x) <javascript:x>")
    assert re.findall(r'href="([^"]*)"', html) == ["mailto:a@b.c", "/a", "#top"]
    assert "<img" not in html and "<a href=\"javascript" not in html.lower()


# -- policies ---------------------------------------------------------------------------------------------------


def test_random_policy_is_seeded_and_sticky():
    def run(seed: int) -> list[int]:
        bot = Bot(RandomPolicy, player="left", action_space=Discrete(3), default_action=0, seed=seed)
        return [bot.act(None) for _ in range(300)]

    assert run(1) == run(1) and run(1) != run(2)
    actions = run(1)
    changes = sum(a != b for a, b in zip(actions, actions[1:]))
    assert 5 < changes < 80 and set(actions) == {0, 1, 2}


def test_idle_policy_plays_the_default_action_and_bots_check_actions():
    bot = Bot(IdlePolicy, player="left", action_space=Discrete(3), default_action=0, seed=0)
    assert {bot.act({"x": 1}) for _ in range(5)} == {0}

    class Wild:
        def act(self, observation):
            return 7

    with pytest.raises(ValueError, match=r"policy Wild playing 'left' chose an invalid action: 7 is outside \[0, 2\]"):
        Bot(Wild, player="left", action_space=Discrete(3), default_action=0, seed=0).act(None)
    assert resolve_policy("random") is RandomPolicy and resolve_policy("idle") is IdlePolicy
    assert resolve_policy("x.py:P", {"x.py:P": Wild}.__getitem__) is Wild
