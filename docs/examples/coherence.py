"""Topic coherence with gensim's CoherenceModel on a distlda model."""
from gensim.corpora import Dictionary
from gensim.models import CoherenceModel

from distlda.models import LdaModel

texts = [["socket", "network", "bytes", "send"], ["file", "path", "read", "lines"],
         ["thread", "lock", "queue", "wait"]] * 20
dictionary = Dictionary(texts)
corpus = [dictionary.doc2bow(t) for t in texts]
lda = LdaModel(corpus, num_topics=3, id2word=dictionary, iterations=50, random_state=0,
               distributed=False)

scores = {"u_mass": CoherenceModel(model=lda, corpus=corpus, coherence="u_mass")}
for measure in ("c_v", "c_npmi", "c_uci"):  # no dictionary=: lda.id2word is used
    scores[measure] = CoherenceModel(model=lda, texts=texts, coherence=measure, topn=4)
for measure, cm in scores.items():
    print(measure, round(cm.get_coherence(), 4))
