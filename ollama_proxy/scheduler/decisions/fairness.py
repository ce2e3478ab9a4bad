"""Weighted fair share of slot-time, in a tree: teams, their principals, then the end users inside one.

Each principal (a key or a file token) has a virtual time: the slot-seconds its
requests used, divided by its weight. Inside a principal, each end user a
trusted front end names, and the principal's own requests that name none, have
one of their own (weight 1 each, among themselves). The next request comes from
the waiting principal with the least virtual time, and within it from the end
user with the least: over any busy stretch each principal gets slot-time in
proportion to its weight, however many requests or end users it brings, and
its end users share that equally. A request is charged its expected slot-time
when it starts and corrected by what it really used when it ends; the charge
counts at every level.

A node (a principal, or an end user in it) that becomes active again (something
waiting or running under it) never starts below the least-served of its active
siblings: idling banks no credit, and a new end user never starts ahead of its
own principal, which stays where it was among the others. It keeps what it had
above that for ``memory`` seconds of idling: an agent that thinks a second
between turns, each turn holding a slot for seconds, is not forgiven its last
turn every time, or it would go ahead of the people who waited all along, turn
after turn. After ``memory`` seconds it comes back level.

The end users kept per principal are bounded (``members_kept``): past it, the
one idle longest is forgotten, and while all of them are active a new one is
scheduled as the principal's own requests are (``admit``). A team is one more
level above its keys: teams (and the principals in none) share by weight, then
a team's keys among themselves by theirs; an idle team's share goes to the
others, as an idle principal's does.

Classes come first: a waiting ``interactive`` request goes ahead of every
``batch`` one, except a batch request that has waited longer than the ageing
bound, which then counts as interactive, so batch work never starves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

INTERACTIVE = "interactive"
BATCH = "batch"
CLASSES = (INTERACTIVE, BATCH)
MAX_WEIGHT = 1000.0  # the largest weight a key or token may have

Node = tuple  # a place in the tree: (None, team), (principal,) in it or not, (principal, end user or None) in that


@dataclass(frozen=True)
class Share:
    """Who a request is charged to, and how much of the GPUs that principal is due.

    ``principal`` and ``team`` are what the tree counts by: stable ids (``auth.Principal.id``, ``team_ref``), so a
    key or team deleted and made again under its name comes in anew; ``name`` is the principal as people read it.
    """

    principal: str
    weight: float = 1.0
    klass: str = INTERACTIVE
    end_user: str | None = None  # whom a trusted front end asks for: a share inside the principal's
    team: str | None = None  # the team the principal belongs to: its share holds the principal's
    team_weight: float = 1.0
    name: str | None = None  # the principal's name, as logs and the admin page show it; None: ``principal``
    owner: str | None = None  # the person the key belongs to (their sign-on subject), if it has one
    path: tuple = field(init=False, repr=False, compare=False)  # (node, weight among its siblings), from the top

    def __post_init__(self) -> None:
        path = (((self.principal,), self.weight), ((self.principal, self.end_user), 1.0))
        if self.team is not None:
            path = (((None, self.team), self.team_weight), *path)  # no principal is None: no node is a team's
        object.__setattr__(self, "path", path)

    @property
    def leaf(self) -> Node:
        """The node of the one whose request it is: an end user, or the principal's own requests."""
        return self.path[-1][0]

    @property
    def shown(self) -> Node:
        """The leaf as people read it: the principal's name, not its id (the admin page's prompt owners)."""
        return (self.principal if self.name is None else self.name, self.end_user)

    @property
    def who(self) -> str:
        """The principal, or ``principal/end user``, as logs and the admin page show it: by name."""
        return named(self.shown)


def named(leaf: Node) -> str:
    """Show a leaf node as ``Share.who`` does."""
    principal, end_user = leaf
    return principal if end_user is None else f"{principal}/{end_user}"


IDLE_KEPT = 10_000  # idle nodes whose virtual time is remembered; the longest idle is forgotten first
MEMBERS_KEPT = 1_000  # end users remembered per principal (``scheduling.max_end_users_per_key``)


class FairShare:
    """The virtual time of every active node, and of those idle for less than ``memory`` seconds."""

    def __init__(self, memory: float = 0.0, members_kept: int = MEMBERS_KEPT) -> None:
        self.memory = memory
        self.members_kept = members_kept
        self._vtime: dict[Node, float] = {}
        self._inside: dict[Node, int] = {}  # node -> requests waiting or running under it (the active nodes)
        self._holding: dict[Node, float] = {}  # node -> virtual time charged for requests still running
        self._active: dict[Node, set[Node]] = {}  # parent -> its active children; the principals under ()
        self._members: dict[str, set[Node]] = {}  # principal -> its end users' nodes remembered, active or idle
        self._idle_since: dict[Node, float] = {}  # in the order they went idle

    def vtime(self, node: Node) -> float:
        return self._vtime.get(node, 0.0)

    def rank(self, share: Share) -> tuple[float, ...]:
        """The virtual times down a share's path: its request goes before those with a smaller rank."""
        return tuple(self._vtime.get(node, 0.0) for node, _ in share.path)

    def inside(self, node: Node) -> bool:
        """Whether ``node`` has anything waiting or running."""
        return node in self._inside

    def counts(self) -> dict[Node, int]:
        return dict(self._inside)

    def admit(self, share: Share, now: float) -> Share:
        """The share a request is scheduled under: its own, or its principal's if that has too many end users."""
        if share.end_user is None:
            return share
        members = self._members.setdefault(share.principal, set())
        if share.leaf in members:
            return share
        self._forget_idle(now)
        if len(members) >= self.members_kept and not self._forget_idle_member(members):
            return replace(share, end_user=None)
        members.add(share.leaf)
        return share

    def enter(self, share: Share, now: float) -> None:
        """Count a request in (waiting, or started unannounced): each node it brings back is levelled first."""
        parent: Node = ()
        for node, _ in share.path:
            if node not in self._inside:
                self._activate(node, parent, now)
                self._inside[node] = 0
            self._inside[node] += 1
            parent = node

    def leave(self, share: Share, now: float) -> None:
        """Count a request out (ended, or left the queue unstarted): from the bottom, so a parent goes idle last."""
        nodes = [()] + [node for node, _ in share.path]
        for parent, node in reversed(list(zip(nodes, nodes[1:], strict=False))):
            self._inside[node] -= 1
            if not self._inside[node]:
                del self._inside[node]
                self._active[parent].discard(node)
                self._idle(node, now)

    def start(self, share: Share, expected: float) -> None:
        """Charge a request that starts its expected slot-seconds, held until it ends (``finish``)."""
        for node, weight in share.path:
            self._vtime[node] = self._vtime.get(node, 0.0) + expected / weight
            self._holding[node] = self._holding.get(node, 0.0) + expected / weight

    def finish(self, share: Share, expected: float, used: float) -> None:
        """Correct a started request's charge by the slot-seconds it really used."""
        for node, weight in share.path:
            self._holding[node] -= expected / weight
            if not self._holding[node] or node not in self._inside:
                del self._holding[node]
        self.charge(share, used - expected)

    def ran(self, share: Share, seconds: float, now: float) -> None:
        """Charge requests that started and ended unannounced (on lent slots), as if they had come and gone."""
        self.enter(share, now)
        self.charge(share, seconds)
        self.leave(share, now)

    def charge(self, share: Share, seconds: float) -> None:
        """Count slot-seconds (negative: give back an overestimate) at every level of the share."""
        for node, weight in share.path:
            self._vtime[node] = self._vtime.get(node, 0.0) + seconds / weight

    def _served(self, node: Node) -> float:
        """What an active node has had: its virtual time less what its running requests hold."""
        return self._vtime.get(node, 0.0) - self._holding.get(node, 0.0)

    def _activate(self, node: Node, parent: Node, now: float) -> None:
        """Bring ``node`` in never below the least-served of its active siblings (its own, if idle < ``memory``)."""
        self._forget_idle(now)
        siblings = self._active.setdefault(parent, set())
        floor = min((self._served(sibling) for sibling in siblings), default=0.0)
        kept = self._idle_since.pop(node, None) is not None
        self._vtime[node] = max(floor, self._vtime[node]) if kept else floor
        siblings.add(node)

    def _idle(self, node: Node, now: float) -> None:
        self._idle_since[node] = now
        self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        while self._idle_since:
            node, since = next(iter(self._idle_since.items()))
            if now - since < self.memory and len(self._idle_since) <= IDLE_KEPT:
                return
            self._forget(node)

    def _forget_idle_member(self, members: set[Node]) -> bool:
        """Forget the end user idle longest of ``members``, if one is idle."""
        oldest = next((node for node in self._idle_since if node in members), None)
        if oldest is None:
            return False
        self._forget(oldest)
        return True

    def _forget(self, node: Node) -> None:
        del self._idle_since[node]
        self._vtime.pop(node, None)
        self._holding.pop(node, None)
        if len(node) == 2 and node[0] is not None:  # an end user's (or its principal's own requests')
            members = self._members.get(node[0])
            if members is not None:
                members.discard(node)
                if not members:
                    del self._members[node[0]]
        else:
            self._active.pop(node, None)


def class_rank(share: Share, waited: float, ageing: float) -> int:
    """0 for interactive (or batch that waited past ``ageing`` seconds), 1 for batch."""
    return 0 if share.klass != BATCH or waited >= ageing else 1
