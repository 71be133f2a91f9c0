"""distlda -> gensim and back: to_gensim() and LdaModel.from_gensim()."""
import numpy as np
from gensim.corpora import Dictionary

from distlda.models import LdaModel

texts = [["socket", "network", "bytes", "send"], ["file", "path", "read", "lines"],
         ["thread", "lock", "queue", "wait"]] * 20
dictionary = Dictionary(texts)
corpus = [dictionary.doc2bow(t) for t in texts]
lda = LdaModel(corpus, num_topics=3, id2word=dictionary, iterations=50, random_state=0,
               distributed=False)

g = lda.to_gensim()                       # a gensim.models.LdaModel
assert np.allclose(g.get_topics(), lda.get_topics(), rtol=0, atol=1e-12)
print(g.show_topic(0, topn=4))            # gensim's own methods on distlda's topics
g.save("from_distlda.gensim")             # gensim's file format, for gensim-only tools

again = LdaModel.from_gensim(g, corpus, random_state=0)  # a Gibbs state seeded from gensim
again.train(20)                           # and Gibbs sampling goes on from there
print(again.show_topic(0, topn=4))
