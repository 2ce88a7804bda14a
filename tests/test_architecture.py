"""The structure stays one-way (docs/architecture.md): no module imports itself back through
others, and models point at models of their own stage or an earlier one, apart from the few
back-references listed here on purpose. The layers themselves are checked by import-linter
(pyproject.toml, `make lint`)."""

from django.apps import apps
import grimp

PACKAGES = ("crmsync", "delivery", "leads", "mapping", "ingestion", "audit", "core", "sandbox")
# Later stages first, as in pyproject's layers contract.
STAGES = ("crmsync", "delivery", "leads", "mapping", "ingestion", "audit")

# Foreign keys that point from an earlier stage to a later one, each for a reason.
BACK_REFERENCES = {
    # A submission keeps what became of it, written by the pipeline after mapping.
    ("ingestion.Submission", "lead", "leads.Lead"),
    ("ingestion.Submission", "mapping_version", "mapping.MappingVersion"),
    # An audit row points at what it describes (nullable, with copied identifiers).
    ("audit.SyncLog", "destination", "delivery.Destination"),
    ("audit.SyncLog", "push_job", "delivery.PushJob"),
    ("audit.SyncLog", "lead", "leads.Lead"),
}


def test_no_module_imports_itself_back_through_others():
    graph = grimp.build_graph(*PACKAGES)
    modules = {m for m in graph.modules if ".migrations" not in m}
    imports = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}

    cycles = _strongly_connected(imports)

    assert cycles == [], f"import cycles: {cycles}"


def test_the_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_models_point_only_at_their_own_stage_or_an_earlier_one_but_for_the_listed_back_references():
    upward = set()
    for model in apps.get_models():
        source = model._meta.app_label
        if source not in STAGES:
            continue
        for field in model._meta.get_fields():
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            target = field.related_model._meta.app_label
            if target in STAGES and STAGES.index(target) < STAGES.index(source):
                upward.add((model._meta.label, field.name, field.related_model._meta.label))

    assert upward == BACK_REFERENCES


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups
