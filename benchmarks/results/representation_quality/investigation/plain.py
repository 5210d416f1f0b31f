import torch, time, sys
torch.set_num_threads(1)
from vase_rl.config import get_preset
from vase_rl.model import VASEModel
from vase_rl.losses import reconstruction_nll, gaussian_kl
from vase_rl.envs.sampler import SpriteSampler
cfg = get_preset("cpu")
torch.manual_seed(0)
m = VASEModel(cfg.model)
import os
lvb = float(os.environ.get("LVB", "0"))
with torch.no_grad():
    m.encoder.head.bias[cfg.model.latent_dim:] = lvb
lr = float(sys.argv[1]) if len(sys.argv) > 1 else 6e-4
opt = torch.optim.Adam(m.parameters(), lr=lr)
s = SpriteSampler("mnist", 32, seed=0)
env = torch.zeros(64, dtype=torch.long)
for step in range(int(os.environ.get('STEPS','1001'))):
    x = torch.from_numpy(s.sample(64)[0]).permute(0,3,1,2).float()/255
    mu, lv, h = m.encoder(x)
    z = mu + (0.5*lv).exp()*torch.randn_like(mu)
    rec = reconstruction_nll(m.decoder(z, env), x, "bernoulli").mean()
    kl = gaussian_kl(mu, lv).sum(1).mean()
    beta = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    mode = os.environ.get("MODE", "elbo")
    if mode == "elbo":
        loss = rec + beta * kl
    else:
        C = min(float(os.environ.get("CMAX", "25")), step / float(os.environ.get("RAMP", "1500")) * float(os.environ.get("CMAX", "25")))
        gap = kl - C
        if mode == "upper": gap = gap.clamp_min(0)
        loss = rec + float(os.environ.get("GAMMA", "10")) * gap ** 2
    opt.zero_grad(); loss.backward(); opt.step()
    if step % 250 == 0: print(step, round(rec.item(),1), round(kl.item(),2), flush=True)
