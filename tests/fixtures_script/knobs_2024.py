"""The configuration part of a 2024-style speedrun script, written for the script-backend tests.

Never run, only parsed: a plain class of annotated attributes, module-level optimizers, a
warmdown in return values, a momentum warmup in an expression, non-ASCII text before a literal.
"""


class Hyperparameters:
    # data hyperparams
    input_bin : str = 'data/fineweb10B/fineweb_train_*.bin' # training shards (glob)
    # optimization hyperparams
    batch_size : int = 8*64 # sequences per step, all ranks
    sequence_length : int = 1024 # tokens per sequence
    num_iterations : int = 3000 # optimizer steps
    learning_rate : float = 0.0036
    warmdown_iters = 900
    val_loss_every = 125 # steps between validations
args = Hyperparameters()


def get_lr(it):
    if it < args.warmup_iters:
        return (it+1) / args.warmup_iters
    elif it < args.num_iterations - args.warmdown_iters:
        return 1.0
    else:
        return (args.num_iterations - it) / args.warmdown_iters


label = "α→β"; beta = 0.5  # a literal after non-ASCII text on its line
a, b, c = (3.4445, -4.7750, 2.0315)
scale = 2 ** -0.5
window_schedule = [(0.0, 64), (0.5, 1024)]  # (progress, window)
optimizer1 = torch.optim.AdamW(raw_model.lm_head.parameters(), lr=args.learning_rate, betas=(0.9, 0.95),
                               weight_decay=0)
optimizer2 = Muon(raw_model.transformer.h.parameters(), lr=0.1*args.learning_rate, momentum=0.95)
for step in range(args.num_iterations + 1):
    frac = min(step / 500, 1)
    for group in optimizer2.param_groups:
        group["momentum"] = (1 - frac) * 0.85 + frac * 0.95
