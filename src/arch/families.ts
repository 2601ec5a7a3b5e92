/** The architectures served (config.json's `architectures[0]`), each with its family (src/arch/family.ts). */
import type { Architecture } from '../model/types.js';
import type { Family } from './family.js';
import { GPT2 } from './gpt2.js';
import { LLAMA } from './llama.js';
import { PHI } from './phi.js';

const FAMILIES: Readonly<Record<Architecture, Family>> = {
  LlamaForCausalLM: LLAMA,
  MistralForCausalLM: LLAMA,
  Qwen2ForCausalLM: LLAMA,
  Phi3ForCausalLM: LLAMA,
  MobiLlamaForCausalLM: LLAMA,
  PhiForCausalLM: PHI,
  GPT2LMHeadModel: GPT2,
};

export const ARCHITECTURES = Object.keys(FAMILIES) as Architecture[];

export const familyOf = (architecture: Architecture): Family => FAMILIES[architecture];
