"""The model text: stage markers, repeat collapsing, the length budget's cut order; and the step list."""

from __future__ import annotations

from malseq.features.catalogue import BY_ID
from malseq.features.types import MODULE_SCOPE, BehaviourEvent
from malseq.sequence import BehaviourSequence, EntryPointRef, SequenceStep, Stage, render_steps, render_text

INS, M, U = Stage.INSTALL, Stage.IMPORT, Stage.UNREACHED


def _seq(*steps: tuple[Stage, str]) -> BehaviourSequence:
    out = []
    for n, (stage, behaviour) in enumerate(steps, start=1):
        event = BehaviourEvent(behaviour, "index.js", n, 0, MODULE_SCOPE, "x")
        out.append(SequenceStep(behaviour, stage, "postinstall: node index.js", (event,), 0))
    return BehaviourSequence(tuple(out), (EntryPointRef(INS, "postinstall: node index.js", "index.js", MODULE_SCOPE),),
                             False, 0.0)


def _words(text: str) -> int:
    return len(text.split())


def test_format_markers_and_separators() -> None:
    seq = _seq((INS, "read_env"), (INS, "encoding_call"), (INS, "upload_data"), (M, "import_os_module"),
               (U, "run_command"))
    assert render_text(seq) == (
        "install : read environment variables , encode or decode data , upload data to server ; "
        "import : import operating system module ; unreached : run external command"
    )


def test_stages_are_grouped_in_fixed_order_and_empty_ones_left_out() -> None:
    seq = _seq((M, "read_env"), (INS, "upload_data"), (M, "fs_read"))
    assert render_text(seq) == "install : upload data to server ; import : read environment variables , read file"
    assert render_text(_seq()) == ""


def test_consecutive_repeats_collapse() -> None:
    seq = _seq((INS, "read_env"), (INS, "read_env"), (INS, "fs_read"), (INS, "read_env"), (U, "fs_read"),
               (U, "fs_read"))
    assert render_text(seq) == (
        "install : read environment variables , read file , read environment variables ; unreached : read file"
    )


def test_budget_drops_repeats_first_unreached_first() -> None:
    steps = [(INS, "read_env"), (INS, "fs_read"), (INS, "read_env"), (M, "fs_read"), (M, "dns_lookup"), (M, "fs_read"),
             (U, "run_command"), (U, "fs_write"), (U, "run_command")]
    seq = _seq(*steps)
    full = render_text(seq, max_words=1000)
    assert full.count("run external command") == 2
    # One word short: the last repeat of the unreached block goes first.
    cut = render_text(seq, max_words=_words(full) - 1)
    assert cut.endswith("unreached : run external command , write file")
    assert cut.count("read environment variables") == 2 and cut.count("read file") == 3
    # Then the import block's repeats, and only then the install block's.
    cut2 = render_text(seq, max_words=_words(cut) - 1)
    assert "import : read file , perform dns lookup ;" in cut2
    assert cut2.count("read environment variables") == 2
    cut3 = render_text(seq, max_words=_words(cut2) - 1)
    assert cut3.startswith("install : read environment variables , read file ; import")


def test_budget_then_drops_unreached_then_import_then_install_from_the_end() -> None:
    seq = _seq((INS, "read_env"), (INS, "encoding_call"), (INS, "upload_data"), (M, "fs_read"), (M, "dns_lookup"),
               (U, "run_command"), (U, "fs_write"))
    no_unreached = "install : read environment variables , encode or decode data , upload data to server ; " \
                   "import : read file , perform dns lookup"
    assert render_text(seq, max_words=_words(no_unreached)) == no_unreached
    assert render_text(seq, max_words=_words(no_unreached) - 1) == (
        "install : read environment variables , encode or decode data , upload data to server ; import : read file")
    install_only = "install : read environment variables , encode or decode data , upload data to server"
    assert render_text(seq, max_words=_words(install_only)) == install_only
    assert render_text(seq, max_words=10) == "install : read environment variables , encode or decode data"
    assert render_text(seq, max_words=9) == "install : read environment variables"
    for budget in range(0, 60):
        assert _words(render_text(seq, max_words=budget)) <= budget


def test_long_sequence_respects_budget_and_keeps_install_first() -> None:
    ids = sorted(BY_ID)
    steps = [(INS, ids[i % len(ids)]) for i in range(300)] + [(U, "run_command")] * 3
    text = render_text(_seq(*steps), max_words=200)
    assert _words(text) <= 200
    assert text.startswith("install : ") and "unreached" not in text


def test_shuffled_and_source_orders_are_deterministic_and_keep_stage_contents() -> None:
    seq = _seq(*[(INS, b) for b in ("read_env", "fs_read", "encoding_call", "upload_data", "dns_lookup", "fs_write")],
               (U, "run_command"))
    a = render_text(seq, order="shuffled", seed=1)
    assert a == render_text(seq, order="shuffled", seed=1)
    assert sorted(a.split(" ; ")[0][len("install : "):].split(" , ")) == sorted(
        render_text(seq).split(" ; ")[0][len("install : "):].split(" , "))
    assert any(render_text(seq, order="shuffled", seed=s) != render_text(seq) for s in range(5))
    assert a.endswith("unreached : run external command")
    assert render_text(seq, order="source") == render_text(seq)  # lines already increase


def test_render_steps_lists_file_line_and_sanitizes() -> None:
    event = BehaviourEvent("read_env", "evil\x1b[31m.js", 7, 2, "steal\u202e", "x")
    step = SequenceStep("read_env", INS, "postinstall: node evil.js\x07", (event, event), 2, count=3)
    seq = BehaviourSequence((step,), (EntryPointRef(INS, "postinstall: node evil.js\x07", "evil.js", MODULE_SCOPE),),
                            True, 0.0)
    lines = render_steps(seq)
    joined = "\n".join(lines)
    assert "\x1b" not in joined and "\x07" not in joined and "\u202e" not in joined
    assert "read environment variables [read_env] x3" in joined
    assert "evil\\x1b[31m.js:7" in joined
    assert "budget exhausted" in joined


def test_use_block_sits_between_import_and_unreached_and_is_cut_before_import() -> None:
    from malseq.sequence import BehaviourSequence, SequenceStep, Stage, render_text

    def step(behaviour: str, stage: Stage) -> SequenceStep:
        return SequenceStep(behaviour, stage, "e", (), 0)

    seq = BehaviourSequence((step("read_env", Stage.INSTALL), step("network_request", Stage.IMPORT),
                             step("run_command", Stage.USE), step("fs_read", Stage.UNREACHED)), (), False, 0.0)
    assert render_text(seq) == ("install : read environment variables ; import : send network request ; "
                                "use : run external command ; unreached : read file")
    # 17 words without unreached; then the use block goes before the import block
    assert render_text(seq, max_words=17) == ("install : read environment variables ; import : send network request"
                                              " ; use : run external command")
    assert render_text(seq, max_words=16).endswith("import : send network request")
