"""The command line that starts the trainer: one process, or one per device through ``torchrun``.

No heavy imports: providers build this on the console side. ``torchrun --standalone`` picks a free rendezvous
port on this machine; multi-node runs come through SkyPilot, which passes its own node list and rank.
"""

from __future__ import annotations


def trainer_argv(python: str, spec_path: str, *, nproc: int = 1, resume: bool = False, nnodes: int = 1,
                 node_rank: int = 0, master_addr: str | None = None, master_port: int = 29500) -> list[str]:
    tail = ["-m", "trainer", "--config", spec_path, *(["--resume"] if resume else [])]
    if nproc <= 1 and nnodes <= 1:
        return [python, *tail]
    head = [python, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes <= 1:
        head.append("--standalone")
    else:
        if not master_addr:
            raise ValueError("a multi-node launch needs the address of node 0")
        head += [f"--nnodes={nnodes}", f"--node_rank={node_rank}", f"--master_addr={master_addr}",
                 f"--master_port={master_port}"]
    return [*head, *tail]
